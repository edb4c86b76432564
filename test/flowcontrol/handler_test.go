package flowcontrol

import (
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
	"github.com/tokenserver/tokenserver/wire"
)

// handlerActor counts the tokens it handles, in order, taking work per token.
type handlerActor struct {
	work    time.Duration
	handled *atomic.Int64
	order   chan<- error // the first token out of order or damaged
}

// Receive handles one message: a TokenReceived takes work, then counts.
func (h *handlerActor) Receive(ctx actor.Context) {
	m, ok := ctx.Message().(*actors.TokenReceived)
	if !ok {
		return
	}
	time.Sleep(h.work) // the handler's work: this is what makes it slow
	want := uint64(h.handled.Load())
	if id, ok := tokenID(m.Data); !ok || id != want {
		put(h.order, errors.New("token out of order or damaged"))
	}
	h.handled.Add(1)
}

// spawnHandler spawns a handlerActor, with CreditMiddleware when credit is
// set, and stops it when the test ends (after the server: cleanups run in
// reverse).
func spawnHandler(t *testing.T, sys *actor.ActorSystem, work time.Duration, credit bool) (*actor.PID, *atomic.Int64, chan error) {
	handled := new(atomic.Int64)
	order := make(chan error, 1)
	producer := func() actor.Actor { return &handlerActor{work: work, handled: handled, order: order} }
	props := actor.PropsFromProducer(producer)
	if credit {
		props = actors.HandlerProps(producer)
	}
	pid := sys.Root.Spawn(props)
	t.Cleanup(func() { _ = sys.Root.StopFuture(pid).Wait() })
	return pid, handled, order
}

// writeTokens writes n numbered tokens of size bytes to conn, each write
// under its own deadline of perWrite, and returns how many it wrote in full
// and the error that stopped it, if any.
func writeTokens(conn net.Conn, n, size int, perWrite time.Duration) (int, error) {
	var frame []byte
	for i := range n {
		frame = wire.AppendToken(frame[:0], makeToken(uint64(i), size))
		_ = conn.SetWriteDeadline(time.Now().Add(perWrite))
		if _, err := conn.Write(frame); err != nil {
			return i, err
		}
	}
	return n, nil
}

// A slow handler PID (20 ms per TokenReceived, with CreditMiddleware) under a
// writer that sends 100 tokens of 64 KiB as fast as its socket takes them:
// every token is handled, in order; the server never has more than its read
// window of tokens waiting for the handler (the credit holds the reading
// back, so TCP pushes back on the writer); the heap grows by less than
// 64 MiB. (Before issue 11 such a server read 5,311 tokens in 2 s and its
// heap reached 337 MiB.)
func TestSlowHandlerPIDWithCredit(t *testing.T) {
	const n, size, work = 100, 64 << 10, 20 * time.Millisecond
	certs := newCerts(t)
	sys := newSystem(t)
	pid, handled, order := spawnHandler(t, sys, work, true)
	var delivered, maxBacklog atomic.Int64
	connErrs := make(chan error, 4)
	_, addr := startServer(t, certs, sys, func(o *actors.ServerOptions) {
		o.Handler = pid
		// OnToken runs as each TokenReceived is sent to the handler: the
		// difference is what waits in the handler's mailbox.
		o.OnToken = func([]byte, *actors.Connection) {
			backlog := delivered.Add(1) - handled.Load()
			if backlog > maxBacklog.Load() {
				maxBacklog.Store(backlog)
			}
		}
		o.OnConnectionError = func(_ *actors.Connection, err error) { put(connErrs, err) }
	})
	heap := startHeapSampler(2 * time.Millisecond)
	conn := dialRaw(t, certs, addr)
	start := time.Now()
	written := make(chan error, 1)
	go func() {
		_, err := writeTokens(conn, n, size, deadline)
		written <- err
	}()
	if err := wait(t, written, "the writer"); err != nil {
		t.Fatalf("writing: %v", err)
	}
	wrote := time.Since(start)
	waitUntil(t, "every token is handled", func() bool { return handled.Load() == n })
	figures := heap.Stop()
	t.Logf("%d tokens of 64 KiB: written in %v, handled in %v; at most %d waited for the handler; heap (in process, server and writer): %v",
		n, wrote.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), maxBacklog.Load(), figures)
	select {
	case err := <-order:
		t.Fatal(err)
	case err := <-connErrs:
		t.Fatalf("connection error: %v", err)
	default:
	}
	if got := delivered.Load(); got != n {
		t.Errorf("%d tokens delivered, want %d", got, n)
	}
	// A read chunk (64 KiB at most) completes at most one frame of a 64 KiB
	// token, so a window of 4 chunks holds at most 4 tokens for the handler.
	if window := int64(tlsio.DefaultReadWindow); maxBacklog.Load() > window {
		t.Errorf("up to %d tokens waited for the handler, over the read window of %d chunks", maxBacklog.Load(), window)
	}
	if figures.Growth() >= 64<<20 {
		t.Errorf("the heap grew by %s, want less than 64 MiB", mib(figures.Growth()))
	}
}

// A handler PID that returns no credit (no CreditMiddleware): its connection
// stops reading once the read window is full. The server hands the handler
// at most the read window of tokens, the writer blocks (its write times out
// with 1,000 tokens of 64 KiB to go), and the heap stays small.
func TestHandlerPIDWithoutCreditStopsReading(t *testing.T) {
	const n, size = 1000, 64 << 10
	certs := newCerts(t)
	sys := newSystem(t)
	pid, _, _ := spawnHandler(t, sys, 0, false)
	var delivered atomic.Int64
	conns := make(chan *actors.Connection, 1)
	_, addr := startServer(t, certs, sys, func(o *actors.ServerOptions) {
		o.Handler = pid
		o.Limits.CloseTimeout = 500 * time.Millisecond
		o.OnConnection = func(c *actors.Connection) { put(conns, c) }
		o.OnToken = func([]byte, *actors.Connection) { delivered.Add(1) }
	})
	heap := startHeapSampler(2 * time.Millisecond)
	conn := dialRaw(t, certs, addr)
	c := wait(t, conns, "the server's connection")
	wrote, err := writeTokens(conn, n, size, time.Second)
	figures := heap.Stop()
	t.Logf("the writer wrote %d tokens of 64 KiB (%s) before a write blocked for 1 s; the handler got %d; heap (in process): %v",
		wrote, mib(uint64(wrote*size)), delivered.Load(), figures)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("the writer wrote %d of %d tokens and ended with %v, want a write timeout: the server kept reading", wrote, n, err)
	}
	if got, window := delivered.Load(), int64(tlsio.DefaultReadWindow); got > window {
		t.Errorf("the server handed %d tokens to a handler that returns no credit, over its read window of %d", got, window)
	}
	if c.IsDead() || c.ReadPaused() {
		t.Errorf("the connection is dead (%v) or paused by its outbound queue (%v): it should only wait for credit", c.IsDead(), c.ReadPaused())
	}
	if figures.Growth() >= 16<<20 {
		t.Errorf("the heap grew by %s while the connection waited for credit, want less than 16 MiB", mib(figures.Growth()))
	}
}

// A connection that waits for credit its handler never returns still closes
// when asked: Close flushes, shuts our side and waits for the peer's side at
// most Limits.CloseTimeout, although nothing reads the socket any more.
func TestConnectionWaitingForCreditCloses(t *testing.T) {
	const closeTimeout = 300 * time.Millisecond
	certs := newCerts(t)
	sys := newSystem(t)
	pid, _, _ := spawnHandler(t, sys, 0, false)
	var delivered atomic.Int64
	conns := make(chan *actors.Connection, 1)
	closes := make(chan bool, 1)
	_, addr := startServer(t, certs, sys, func(o *actors.ServerOptions) {
		o.Handler = pid
		o.Limits.CloseTimeout = closeTimeout
		o.OnConnection = func(c *actors.Connection) { put(conns, c) }
		o.OnToken = func([]byte, *actors.Connection) { delivered.Add(1) }
		o.OnConnectionClose = func(_ *actors.Connection, hadError bool) { put(closes, hadError) }
	})
	conn := dialRaw(t, certs, addr)
	c := wait(t, conns, "the server's connection")
	go func() { _, _ = writeTokens(conn, 20, 64<<10, deadline) }() // ends when the server closes
	waitUntil(t, "the read window is full", func() bool { return delivered.Load() == int64(tlsio.DefaultReadWindow) })
	start := time.Now()
	if !c.Close() {
		t.Fatal("Close returned false on a live connection")
	}
	select {
	case hadError := <-closes:
		t.Logf("closed %v after Close (CloseTimeout %v)", time.Since(start).Round(time.Millisecond), closeTimeout)
		if hadError {
			t.Error("a clean Close ended with hadError")
		}
	case <-time.After(10 * closeTimeout):
		t.Fatalf("the connection did not close within %v of Close (CloseTimeout %v): it waits for credit forever", 10*closeTimeout, closeTimeout)
	}
}
