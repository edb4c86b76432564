package flowcontrol

import (
	"sync"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/actors"
)

// A Go client sends 20 tokens of 1 MiB back to back, far past its 8 MiB
// high-water mark, to a server whose OnToken only counts: Send takes all 20
// (the queue stays under its 64 MiB hard cap), all 20 arrive intact and in
// order, nothing is dropped, and neither side reports an error. (Before
// issue 11 the client failed with ErrQueueFull after 8 to 15 of them.)
func TestClientSendsPastHighWaterMark(t *testing.T) {
	const n, size = 20, 1 << 20
	certs := newCerts(t)
	sys := newSystem(t)
	var mu sync.Mutex
	var got [][]byte
	arrived := make(chan struct{}, n)
	srvErrs := make(chan error, 8)
	srvDrops := make(chan int, 8)
	_, addr := startServer(t, certs, sys, func(o *actors.ServerOptions) {
		o.OnToken = func(tok []byte, _ *actors.Connection) {
			mu.Lock()
			got = append(got, tok)
			mu.Unlock()
			put(arrived, struct{}{})
		}
		o.OnConnectionError = func(_ *actors.Connection, err error) { put(srvErrs, err) }
		o.OnDropped = func(_ *actors.Connection, toks [][]byte, _ error) { put(srvDrops, len(toks)) }
	})

	connected := make(chan struct{}, 1)
	cliErrs := make(chan error, 8)
	cliDrops := make(chan error, 8)
	closed := make(chan bool, 1)
	port := mustPort(t, addr)
	cli, err := actors.NewClient(actors.ClientOptions{
		Host: "127.0.0.1", Port: port, TLS: certs.ClientOptions(),
		Runtime:   actors.Runtime{System: sys},
		OnConnect: func() { put(connected, struct{}{}) },
		OnError:   func(err error) { put(cliErrs, err) },
		OnDropped: func(_ [][]byte, reason error) { put(cliDrops, reason) },
		OnClose:   func(hadError bool) { put(closed, hadError) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, "client", cli.Shutdown) })
	wait(t, connected, "the client's connect")

	tokens := make([][]byte, n)
	for i := range tokens {
		tokens[i] = makeToken(uint64(i), size)
	}
	maxQueued := 0
	for i, tok := range tokens {
		if !cli.Send(tok) {
			t.Fatalf("Send refused token %d of %d (queued %s)", i, n, mib(uint64(cli.Connection().Queued())))
		}
		if c := cli.Connection(); c != nil {
			maxQueued = max(maxQueued, c.Queued())
		}
	}
	t.Logf("Send took %d tokens of 1 MiB back to back; up to %s queued", n, mib(uint64(maxQueued)))
	timeout := time.After(deadline)
	for i := range n {
		select {
		case err := <-cliErrs:
			t.Fatalf("client error after %d tokens arrived: %v", i, err)
		case err := <-srvErrs:
			t.Fatalf("server connection error after %d tokens arrived: %v", i, err)
		case <-arrived:
		case <-timeout:
			t.Fatalf("%d of %d tokens arrived before the deadline", i, n)
		}
	}
	mu.Lock()
	for i, tok := range got {
		if id, ok := tokenID(tok); !ok || id != uint64(i) {
			t.Errorf("token %d: got token %d (intact: %v, %d bytes)", i, id, ok, len(tok))
		}
	}
	mu.Unlock()
	if !cli.Close() {
		t.Fatal("Close returned false on a live client")
	}
	if wait(t, closed, "the client's close") {
		t.Error("the client closed with hadError")
	}
	select {
	case err := <-cliErrs:
		t.Errorf("client error: %v", err)
	case err := <-cliDrops:
		t.Errorf("client dropped tokens: %v", err)
	case err := <-srvErrs:
		t.Errorf("server connection error: %v", err)
	case k := <-srvDrops:
		t.Errorf("server dropped %d tokens", k)
	default:
	}
}
