package delivery

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
)

const (
	// tokens: how many numbered tokens a test sends through the proxy.
	tokens = 100_000
	// resetEvery: the proxy resets both sockets after this many bytes from
	// the client, resets times.
	resetEvery = 256 << 10
	resets     = 6
	// deadline bounds each wait of a test.
	deadline = 90 * time.Second
)

// numbered is token i: its number, then padding (24 bytes).
func numbered(i uint64) []byte {
	b := make([]byte, 24)
	binary.BigEndian.PutUint64(b, i)
	copy(b[8:], "token/2 delivery")
	return b
}

func numberOf(tok []byte) (uint64, bool) {
	if len(tok) != 24 {
		return 0, false
	}
	return binary.BigEndian.Uint64(tok), true
}

// sequence checks that numbered tokens come exactly once and in order.
type sequence struct {
	mu     sync.Mutex
	next   uint64
	errs   []string
	done   chan struct{}
	closed bool
}

func newSequence() *sequence { return &sequence{done: make(chan struct{})} }

func (s *sequence) got(tok []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := numberOf(tok)
	switch {
	case !ok:
		s.errs = append(s.errs, fmt.Sprintf("a token of %d bytes", len(tok)))
	case n != s.next:
		if len(s.errs) < 10 {
			s.errs = append(s.errs, fmt.Sprintf("token %d where %d was next", n, s.next))
		}
		if n > s.next {
			s.next = n + 1
		}
	default:
		s.next++
	}
	if s.next == tokens && !s.closed {
		s.closed = true
		close(s.done)
	}
}

func (s *sequence) wait(t *testing.T, what string) {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(deadline):
		s.mu.Lock()
		defer s.mu.Unlock()
		t.Fatalf("%s: %d of %d tokens after %v", what, s.next, tokens, deadline)
	}
}

func (s *sequence) check(t *testing.T, what string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.errs {
		t.Errorf("%s: %s", what, e)
	}
}

// drops records every token reported dropped, on either side.
type drops struct {
	mu   sync.Mutex
	errs []string
}

func (d *drops) add(side string, n int, reason error) {
	d.mu.Lock()
	d.errs = append(d.errs, fmt.Sprintf("%s dropped %d tokens: %v", side, n, reason))
	d.mu.Unlock()
}

func (d *drops) check(t *testing.T) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, e := range d.errs {
		t.Error(e)
	}
}

// Through a proxy that resets both sockets of the connection six times
// mid-stream (after every 256 KiB from the client), with default options on
// both sides (the client reconnects with actors.DefaultReconnect): every
// one of 100,000 numbered tokens reaches the server's OnToken exactly once
// and in order, every echo reaches the client's OnToken exactly once and in
// order, and nothing is reported dropped. Over token/1 the same resets lose
// tokens that were in the kernel's buffers.
func TestResetsLoseNothing(t *testing.T) {
	resetsLoseNothing(t, func(o *actors.ServerOptions, in *sequence, _ *actor.ActorSystem) {
		o.OnToken = func(tok []byte, c *actors.Connection) {
			in.got(tok)
			c.Send(tok)
		}
	}, nil)
}

// The same with the tokens lent on both sides (LendTokens): read buffers
// and the buffers of tokens that span reads go back for reuse once their
// callbacks return, across the resets too (a resumed session's new decoder
// starts afresh), and the server echoes the tokens of each read at once.
func TestResetsLoseNothingLent(t *testing.T) {
	resetsLoseNothing(t, func(o *actors.ServerOptions, in *sequence, _ *actor.ActorSystem) {
		o.LendTokens = true
		o.OnTokens = func(toks [][]byte, c *actors.Connection) {
			for _, tok := range toks {
				in.got(tok)
			}
			c.SendBatch(toks)
		}
	}, func(o *actors.ClientOptions) { o.LendTokens = true })
}

// The same with a handler PID on the server, which answers each token with
// SendToken to its connection and returns its credit (CreditMiddleware):
// the connection's PID stays the same across the resets.
func TestResetsLoseNothingHandlerPID(t *testing.T) {
	var mu sync.Mutex
	sessions := map[string]int{}
	resetsLoseNothing(t, func(o *actors.ServerOptions, in *sequence, sys *actor.ActorSystem) {
		pid := sys.Root.Spawn(actors.HandlerProps(func() actor.Actor {
			return actor.ReceiveFunc(func(ctx actor.Context) {
				if m, ok := ctx.Message().(*actors.TokenReceived); ok {
					mu.Lock()
					sessions[m.Session]++
					mu.Unlock()
					in.got(m.Data)
					ctx.Send(m.Conn, &actors.SendToken{Data: m.Data})
				}
			})
		}))
		o.Handler = pid
		o.Runtime.System = sys
	}, nil)
	mu.Lock()
	defer mu.Unlock()
	if len(sessions) != 1 || sessions[""] != 0 {
		t.Errorf("TokenReceived.Session: %v, want one session for every token", sessions)
	}
}

func resetsLoseNothing(t *testing.T, handle func(*actors.ServerOptions, *sequence, *actor.ActorSystem), client func(*actors.ClientOptions)) {
	certs, err := tlsio.GenerateDevCerts()
	if err != nil {
		t.Fatal(err)
	}
	sys := actor.NewActorSystem()
	defer sys.Shutdown()
	var dropped drops
	in, back := newSequence(), newSequence()
	so := actors.ServerOptions{
		Host: "127.0.0.1", TLS: certs.ServerOptions(),
		OnConnect: func() {},
		OnDropped: func(_ *actors.Connection, toks [][]byte, reason error) { dropped.add("server", len(toks), reason) },
	}
	handle(&so, in, sys)
	srv, err := actors.NewServer(so)
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, "server", srv.Shutdown)
	within(t, "the server listening", func() bool { return srv.Addr() != nil })
	proxy := startResetProxy(t, srv.Addr().String(), resetEvery, resets)
	_, port, _ := net.SplitHostPort(proxy.Addr())
	co := actors.ClientOptions{
		Host: "127.0.0.1", Port: atoi(t, port), TLS: certs.ClientOptions(),
		Reconnect: actors.DefaultReconnect(),
		OnToken:   func(tok []byte, _ *actors.Connection) { back.got(tok) },
		OnDropped: func(toks [][]byte, reason error) { dropped.add("client", len(toks), reason) },
	}
	if client != nil {
		client(&co)
	}
	cl := startSending(t, co, tokens)
	in.wait(t, "the server's handler")
	back.wait(t, "the client's echoes")
	in.check(t, "server")
	back.check(t, "client")
	dropped.check(t)
	if proxy.Resets() != resets {
		t.Errorf("the proxy reset %d connections, want %d", proxy.Resets(), resets)
	}
	ss, cs := srv.Stats(), cl.Stats()
	t.Logf("%d tokens each way through %d resets: server resumed %d sessions, resent %d tokens, %d acks sent, %d received; client resent %d, %d acks sent, %d received, %d connects",
		tokens, proxy.Resets(), ss.SessionsResumed, ss.TokensResent, ss.AcksSent, ss.AcksReceived, cs.TokensResent, cs.AcksSent, cs.AcksReceived, cs.Opened)
	if ss.SessionsResumed == 0 {
		t.Error("no session was resumed: the resets did not break a session")
	}
	if ss.TokensRedelivered != 0 {
		t.Errorf("%d tokens flagged redelivered where the server kept its sessions", ss.TokensRedelivered)
	}
	// Every token went out of the reconnect buffer (a session's frames
	// leave its count when a connection takes them).
	within(t, "the client's reconnect buffer empty", func() bool { return cl.Buffered() == 0 })
}

// startSending starts a client with o, waits until it is connected, and
// sends it n numbered tokens; the client is shut down with the test.
func startSending(t *testing.T, o actors.ClientOptions, n int) *actors.Client {
	t.Helper()
	up := make(chan struct{}, 1)
	o.OnConnect = func() {
		select {
		case up <- struct{}{}:
		default:
		}
	}
	cl, err := actors.NewClient(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, "client", cl.Shutdown) })
	select {
	case <-up:
	case <-time.After(deadline):
		t.Fatal("the client did not connect")
	}
	for i := range uint64(n) {
		if !cl.Send(numbered(i)) {
			t.Fatalf("Send refused token %d", i)
		}
	}
	return cl
}

// shutdown stops a server or client within the deadline.
func shutdown(t *testing.T, what string, f func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	if err := f(ctx); err != nil {
		t.Errorf("%s shutdown: %v", what, err)
	}
}

// within waits until cond holds, polling it (bounded by the deadline).
func within(t *testing.T, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}
