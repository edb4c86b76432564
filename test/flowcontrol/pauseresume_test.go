package flowcontrol

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/wire"
)

// TestReadingGoesOnAfterPauseWithReadWindowOne: after reading paused at the
// high-water mark and resumed under the low-water mark, the connection reads
// on, even with a read window of one chunk: the read credit of a chunk
// delivered while reading was paused is given back when reading resumes. An
// echo server (HighWaterMark 64 KiB, ReadWindow 1) and a raw peer that, three
// times over, writes tokens of 16 KiB without reading until the server has
// stopped reading, then one short token that ends the round, and reads every
// echo in order up to that one. Each round's end token waits in the socket
// while the server is paused, so its echo proves the server read again after
// resuming; the pause comes back in the next round. (A connection that lost
// that credit stopped reading for good after its first pause.)
func TestReadingGoesOnAfterPauseWithReadWindowOne(t *testing.T) {
	const (
		rounds    = 3
		hwm       = 64 << 10
		size      = 16 << 10
		endSize   = 8       // the round's end token: shorter than the others
		maxTokens = 4 << 10 // a bound per round (64 MiB): the pause comes long before
	)
	certs := newCerts(t)
	conns := make(chan *actors.Connection, 1)
	errs := make(chan error, 4)
	_, addr := startServer(t, certs, newSystem(t), func(o *actors.ServerOptions) {
		o.Limits = actors.Limits{HighWaterMark: hwm, ReadWindow: 1}
		o.OnConnection = func(c *actors.Connection) { put(conns, c) }
		o.OnConnectionError = func(_ *actors.Connection, err error) { put(errs, err) }
		o.OnToken = func(tok []byte, c *actors.Connection) { c.Send(tok) }
	})
	peer := dialRaw(t, certs, addr)
	c := wait(t, conns, "the server's connection")
	dec, err := wire.NewDecoder(wire.DefaultMaxTokenSize)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	var frames []wire.Frame

	next := uint64(0) // the number of the next token written
	for round := range rounds {
		// The writer: tokens until the server stops reading, then the end
		// token. Its writes block while the server does not read.
		var stop atomic.Bool
		wrote := make(chan error, 1)
		go func(first uint64) {
			var frame []byte
			id := first
			for ; id < first+maxTokens && !stop.Load(); id++ {
				frame = wire.AppendToken(frame[:0], makeToken(id, size))
				_ = peer.SetWriteDeadline(time.Now().Add(deadline))
				if _, err := peer.Write(frame); err != nil {
					wrote <- err
					return
				}
			}
			_ = peer.SetWriteDeadline(time.Now().Add(deadline))
			_, err := peer.Write(wire.AppendToken(nil, makeToken(id, endSize)))
			wrote <- err
		}(next)
		for end := time.Now().Add(deadline); !c.ReadPaused(); time.Sleep(2 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("round %d: reading did not pause within %v while the peer read nothing, with %d bytes queued (HighWaterMark %d): the server stopped reading first",
					round, deadline, c.Queued(), hwm)
			}
		}
		stop.Store(true)

		// Read every echo, in order, up to the end token's.
		for ended := false; !ended; {
			_ = peer.SetReadDeadline(time.Now().Add(deadline))
			n, rerr := peer.Read(buf)
			frames, err = dec.AppendFrames(frames[:0], buf[:n])
			if err != nil {
				t.Fatalf("round %d: decoding the echoes: %v", round, err)
			}
			for _, f := range frames {
				id, ok := tokenID(f.Token)
				if !ok || id != next || ended {
					t.Fatalf("round %d: echo of token %d (intact: %v, %d bytes) where %d was next", round, id, ok, len(f.Token), next)
				}
				next++
				ended = len(f.Token) == endSize
			}
			if rerr != nil && !ended {
				t.Fatalf("round %d: no end token after the echo of token %d: %v (the server's reading paused: %v, %d bytes queued)",
					round, next-1, rerr, c.ReadPaused(), c.Queued())
			}
		}
		if err := wait(t, wrote, "the writer"); err != nil {
			t.Fatalf("round %d: writing: %v", round, err)
		}
	}
	t.Logf("%d rounds of pause and resume with ReadWindow 1: %d tokens echoed", rounds, next)
	select {
	case err := <-errs:
		t.Fatalf("the connection failed: %v", err)
	default:
	}
}

// TestWindowHoldsAcrossPauseWithoutCredit: a handler PID that returns no
// credit holds its connection's reading at ReadWindow chunks, across a
// pause of the outbound queue too: the resume gives back the credits held
// while paused and none more. An echo server (HighWaterMark 64 KiB,
// ReadWindow 1) whose handler PID never credits gets a token of 12 MiB from
// a raw peer that reads nothing until the server's reading has paused
// behind the echo, then reads it all; once reading has resumed, a second
// token waits in the socket and is not delivered until the test returns the
// handler's credit, and then it is.
//
// Both with the server's memory budget and without one: a 12 MiB token asks
// the budget for memory, and reading is held while it asks, so the grants
// resume reading too; with no budget the outbound queue's resume is the
// only one. (An extra credit at each resume was hidden under the budget,
// whose next ask took it back: mutation testing.)
func TestWindowHoldsAcrossPauseWithoutCredit(t *testing.T) {
	for _, tc := range []struct {
		name   string
		budget int
	}{
		{"default budget", 0},
		{"no budget", -1},
	} {
		t.Run(tc.name, func(t *testing.T) { testWindowHoldsAcrossPause(t, tc.budget) })
	}
}

func testWindowHoldsAcrossPause(t *testing.T, budget int) {
	const big, small = 12 << 20, 100
	certs := newCerts(t)
	sys := newSystem(t)
	connPIDs := make(chan *actor.PID, 4)
	handler := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if m, ok := ctx.Message().(*actors.TokenReceived); ok {
			put(connPIDs, m.Conn) // and no credit
		}
	}))
	t.Cleanup(func() { _ = sys.Root.StopFuture(handler).Wait() })
	var delivered atomic.Int64
	conns := make(chan *actors.Connection, 1)
	errs := make(chan error, 4)
	_, addr := startServer(t, certs, sys, func(o *actors.ServerOptions) {
		o.Handler = handler
		o.MemoryBudget = budget
		o.Limits = actors.Limits{HighWaterMark: 64 << 10, ReadWindow: 1}
		o.OnConnection = func(c *actors.Connection) { put(conns, c) }
		o.OnConnectionError = func(_ *actors.Connection, err error) { put(errs, err) }
		o.OnToken = func(tok []byte, c *actors.Connection) {
			delivered.Add(1)
			c.Send(tok)
		}
	})
	peer := dialRaw(t, certs, addr)
	c := wait(t, conns, "the server's connection")

	wrote := make(chan error, 1)
	go func() {
		_ = peer.SetWriteDeadline(time.Now().Add(deadline))
		_, err := peer.Write(wire.AppendToken(nil, makeToken(0, big)))
		wrote <- err
	}()
	waitUntil(t, "the server's reading pauses behind the echo", c.ReadPaused)
	if err := wait(t, wrote, "the first token's write"); err != nil {
		t.Fatal(err)
	}
	_ = peer.SetReadDeadline(time.Now().Add(deadline))
	if _, err := readTokens(peer, 64<<10, nil, func(tok []byte) bool {
		if id, ok := tokenID(tok); !ok || id != 0 {
			t.Fatalf("echo of token %d (intact: %v)", id, ok)
		}
		return false
	}); err != nil {
		t.Fatalf("reading the echo: %v", err)
	}
	waitUntil(t, "the server's reading resumes", func() bool { return !c.ReadPaused() })

	// The window is still full: the next token waits in the socket.
	_ = peer.SetWriteDeadline(time.Now().Add(deadline))
	if _, err := peer.Write(wire.AppendToken(nil, makeToken(1, small))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-time.After(time.Second): // bounded wait for a non-event
	case err := <-errs:
		t.Fatalf("the connection failed: %v", err)
	}
	if n := delivered.Load(); n != 1 {
		t.Fatalf("%d tokens delivered to a handler that returned no credit, with ReadWindow 1", n)
	}
	// Its credit returned, the connection reads the next token.
	sys.Root.Send(wait(t, connPIDs, "the handler's token"), &actors.Credit{Tokens: 1})
	waitUntil(t, "the second token is delivered once the first is credited", func() bool { return delivered.Load() == 2 })
}
