package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/actors"
)

// tokencat baseline serves the plain TLS echo loop in its own process: the
// first line as serve's, every reply verified by bench, exit 0 on SIGTERM.
func TestBaselineBinaryEchoesAndExitsOnSIGTERM(t *testing.T) {
	t.Parallel()
	dir := certDir(t)
	srv := startListening(t, "baseline", dir)
	r := mustRun(t, 0, 30*time.Second, "", sendArgs(srv.addr, dir, `back\slash`, "two\nlines", "")...)
	if want := "back\\slash\ntwo\nlines\n\n"; r.stdout != want {
		t.Errorf("send printed %q, want %q", r.stdout, want)
	}
	// Both protocols, token/2 by default; token/1 only when restricted.
	only1 := startListening(t, "baseline", dir, "--protocol", "token/1")
	for _, c := range []struct{ addr, protocol, want string }{
		{srv.addr, "", "token/2"}, {srv.addr, "token/1", "token/1"}, {only1.addr, "", "token/1"},
	} {
		for _, mode := range []string{"roundtrip", "pipeline"} {
			args := append([]string{"bench", "--addr", c.addr, "--mode", mode, "--count", "200", "--conns", "2", "--size", "40", "--json"}, tlsArgs(dir, "client")...)
			if c.protocol != "" {
				args = append(args, "--protocol", c.protocol)
			}
			r := mustRun(t, 0, time.Minute, "", args...)
			var res benchJSON
			if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || res.Tokens != 200 || res.Protocol != c.want {
				t.Errorf("%s --protocol %q: %q, %v; want 200 tokens in %s", mode, c.protocol, r.stdout, err, c.want)
			}
		}
	}
	for _, p := range []*serveProc{srv, only1} {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := p.wait(t, 30*time.Second); code != 0 {
			t.Fatalf("baseline exited %d after SIGTERM, want 0\nstderr:\n%s", code, p.stderr.String())
		}
	}
}

func TestBaselineUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"baseline"},
		{"baseline", "--listen", "127.0.0.1:0"},
		{"baseline", "--listen", "nowhere", "--ca", "a", "--cert", "b", "--key", "c"},
		{"baseline", "extra"},
		{"baseline", "--listen", "127.0.0.1:0", "--ca", "a", "--cert", "b", "--key", "c", "--protocol", "token/3"},
	} {
		if r := runInProcess(t, args...); r.code != exitUsage {
			t.Errorf("%s: exit %d, want %d (stderr %q)", strings.Join(args, " "), r.code, exitUsage, r.stderr)
		}
	}
}

// The plain loop speaks token/2 to the project's own client: WELCOME to its
// HELLO, every token echoed in order (the empty one, one larger than a read
// and than 256 KiB, and more than 256 small ones in a row), every one
// acknowledged, and a clean end: END both ways within the close timeout,
// nothing reported dropped, no error.
func TestBaselineToken2LoopAnswersActorsClient(t *testing.T) {
	t.Parallel()
	certs, _, scfg := devTLS(t)
	base := startTestBaseline(t, scfg)
	host, portStr, _ := net.SplitHostPort(base.addr())
	port, _ := strconv.Atoi(portStr)

	tokens := [][]byte{{}, bytes.Repeat([]byte("a\nb\\"), 100<<10)} // 400 KiB
	for i := range 600 {
		tokens = append(tokens, []byte(fmt.Sprintf("token %d\n\\", i)))
	}
	connected := make(chan struct{}, 1)
	replies := make(chan []byte, len(tokens))
	closed := make(chan bool, 1)
	var mu sync.Mutex
	var problems []string
	problem := func(s string) {
		mu.Lock()
		problems = append(problems, s)
		mu.Unlock()
	}
	client, err := actors.NewClient(actors.ClientOptions{
		Host: host, Port: port, TLS: certs.ClientOptions(),
		OnConnect: func() { notify(connected) },
		OnToken:   func(tok []byte, _ *actors.Connection) { replies <- bytes.Clone(tok) },
		OnError:   func(err error) { problem(fmt.Sprintf("error: %v", err)) },
		OnDropped: func(toks [][]byte, reason error) { problem(fmt.Sprintf("%d dropped: %v", len(toks), reason)) },
		OnClose:   func(hadError bool) { closed <- hadError },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := client.Shutdown(ctx); err != nil {
			t.Errorf("client shutdown: %v", err)
		}
	}()
	select {
	case <-connected:
	case <-time.After(30 * time.Second):
		t.Fatal("the client did not connect")
	}
	if p := client.Connection().Protocol(); p != actors.ProtocolToken2 {
		t.Fatalf("the client speaks %q to the loop, want token/2", p)
	}
	for _, tok := range tokens {
		if !client.Send(tok) {
			t.Fatal("Send refused a token")
		}
	}
	for i, want := range tokens {
		select {
		case got := <-replies:
			if !bytes.Equal(got, want) {
				t.Fatalf("reply %d: %d bytes %.20q, want %d bytes %.20q", i+1, len(got), got, len(want), want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("no reply %d of %d within 30s", i+1, len(tokens))
		}
	}
	// Everything was acknowledged: the client's queue empties (it counts
	// what waits for an ACK) before it closes.
	waitFor(t, 30*time.Second, func() bool { return client.Stats().QueuedBytes == 0 }, "tokens left unacknowledged")
	start := time.Now()
	client.Close()
	select {
	case hadError := <-closed:
		if hadError {
			t.Error("the client closed with an error")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the client did not close")
	}
	if d := time.Since(start); d >= actors.DefaultCloseTimeout {
		t.Errorf("the clean end took %v, the close timeout: the loop did not answer END", d)
	}
	st := client.Stats()
	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 || st.Dropped != nil || st.AcksReceived == 0 || st.TokensReceived != int64(len(tokens)) {
		t.Errorf("problems %q, dropped %v, %d ACKs received, %d tokens received", problems, st.Dropped, st.AcksReceived, st.TokensReceived)
	}
}
