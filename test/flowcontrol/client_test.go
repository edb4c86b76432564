package flowcontrol

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
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

// A Go client whose server stops reading (its handler PID returns no
// credit) is cut by its own write timeout, as a slow consumer, and reports
// through OnDropped what it never wrote: the tokens of the write that
// failed (ErrMaybeSent), then the ones still queued (ErrNotSent), in order,
// the last of them the last token Send took. Nothing it took is reported
// twice, and the server got the first ones.
//
// Over token/1 a token written in full counts as sent: none the server got
// is reported. Over token/2 a token counts as sent once the server
// acknowledged it (its handler took it): the ones it got and had not
// acknowledged yet are reported maybe sent, never not sent.
func TestClientCutBySlowServerReportsUnsent(t *testing.T) {
	for _, p := range []string{actors.ProtocolToken1, actors.ProtocolToken2} {
		t.Run(p, func(t *testing.T) { clientCutBySlowServer(t, p) })
	}
}

func clientCutBySlowServer(t *testing.T, protocol string) {
	const n, size = 200, 64 << 10
	certs := newCerts(t)
	sys := newSystem(t)
	pid, _, _ := spawnHandler(t, sys, 0, false)
	var mu sync.Mutex
	var delivered []uint64
	_, addr := startServer(t, certs, sys, func(o *actors.ServerOptions) {
		o.Handler = pid
		o.Limits.CloseTimeout = 300 * time.Millisecond
		o.OnToken = func(tok []byte, _ *actors.Connection) {
			id, _ := tokenID(tok)
			mu.Lock()
			delivered = append(delivered, id)
			mu.Unlock()
		}
	})
	type report struct {
		ids    []uint64
		reason error
	}
	connected := make(chan struct{}, 1)
	errs := make(chan error, 4)
	reports := make(chan report, 8)
	closed := make(chan bool, 1)
	cli, err := actors.NewClient(actors.ClientOptions{
		Host: "127.0.0.1", Port: mustPort(t, addr), TLS: certs.ClientOptions(),
		Protocols: []string{protocol},
		Runtime:   actors.Runtime{System: sys},
		Limits:    actors.Limits{WriteTimeout: 500 * time.Millisecond},
		OnConnect: func() { put(connected, struct{}{}) },
		OnError:   func(err error) { put(errs, err) },
		OnDropped: func(toks [][]byte, reason error) {
			r := report{reason: reason}
			for _, tok := range toks {
				id, ok := tokenID(tok)
				if !ok {
					id = ^uint64(0) // damaged: fails the order check below
				}
				r.ids = append(r.ids, id)
			}
			put(reports, r)
		},
		OnClose: func(hadError bool) { put(closed, hadError) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, "client", cli.Shutdown) })
	wait(t, connected, "the client's connect")
	// Send n tokens back to back, then one every 10 ms until the client is
	// cut (or refuses): on a loaded machine the writer may take all of the
	// first n into the write that fails, and the later ones are what waits
	// behind it. took is what Send took.
	took := 0
	err = nil
	for end := time.Now().Add(deadline); err == nil && time.Now().Before(end); {
		if !cli.Send(makeToken(uint64(took), size)) {
			break
		}
		took++
		if took >= n {
			select {
			case err = <-errs:
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	if err == nil {
		err = wait(t, errs, "the client's slow consumer error")
	}
	if !errors.Is(err, actors.ErrSlowConsumer) || !errors.Is(err, tlsio.ErrWriteTimeout) {
		t.Fatalf("client error %v, want ErrSlowConsumer and tlsio.ErrWriteTimeout", err)
	}
	if !wait(t, closed, "the client's close") {
		t.Error("the close after an error has hadError false")
	}
	var maybe, notSent []uint64
	for len(reports) > 0 {
		r := <-reports
		switch {
		case errors.Is(r.reason, actors.ErrMaybeSent) && notSent == nil:
			maybe = append(maybe, r.ids...)
		case errors.Is(r.reason, actors.ErrNotSent):
			notSent = append(notSent, r.ids...)
		default:
			t.Fatalf("dropped %d tokens with %v (after %d maybe sent, %d not sent)", len(r.ids), r.reason, len(maybe), len(notSent))
		}
	}
	all := append(append([]uint64(nil), maybe...), notSent...)
	mu.Lock()
	got := append([]uint64(nil), delivered...)
	mu.Unlock()
	t.Logf("Send took %d tokens of 64 KiB; the server's handler got %d; reported %d maybe sent, %d not sent; %d written into socket buffers and never read",
		took, len(got), len(maybe), len(notSent), took-len(all)-len(got))
	if len(notSent) == 0 {
		t.Fatal("no token reported not sent: the client was cut with nothing queued")
	}
	for i, id := range all {
		if want := uint64(took - len(all) + i); id != want {
			t.Fatalf("reported token %d is %d, want %d: the reported tokens are the last ones Send took, in order", i, id, want)
		}
	}
	for i, id := range got {
		if id != uint64(i) {
			t.Fatalf("the server got token %d where %d was next", id, i)
		}
	}
	if len(got) == 0 {
		return
	}
	switch last := got[len(got)-1]; {
	case protocol == actors.ProtocolToken1 && last >= all[0]:
		t.Errorf("token %d was delivered to the server and reported dropped", last)
	case protocol == actors.ProtocolToken2 && last >= notSent[0]:
		t.Errorf("token %d was delivered to the server and reported not sent", last)
	}
}
