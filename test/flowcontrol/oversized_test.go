package flowcontrol

import (
	"testing"

	"github.com/tokenserver/tokenserver/actors"
)

// TestOversizedTokenOnEmptyQueueIsTaken: with Limits.MaxQueue smaller than
// one token, an idle connection still takes that token, as Limits.MaxQueue
// says (one token is always taken by an empty queue, whatever its size). A
// server whose hard cap is 16 KiB sends a token of 64 KiB on a new
// connection; once the raw peer has read it and the queue is empty again, a
// batch of three tokens of 16 KiB (SendBatch takes all or none, on the same
// terms). Send and SendBatch take them, the peer reads all four intact and
// in order, and the connection is neither refused, cut nor reports a drop.
func TestOversizedTokenOnEmptyQueueIsTaken(t *testing.T) {
	const maxQueue, big, small = 16 << 10, 64 << 10, 16 << 10
	certs := newCerts(t)
	conns := make(chan *actors.Connection, 1)
	errs := make(chan error, 4)
	var drops dropLog
	_, addr := startServer(t, certs, newSystem(t), func(o *actors.ServerOptions) {
		o.Limits = actors.Limits{HighWaterMark: maxQueue, MaxQueue: maxQueue}
		o.OnConnection = func(c *actors.Connection) { put(conns, c) }
		o.OnConnectionError = func(_ *actors.Connection, err error) { put(errs, err) }
		o.OnDropped = func(_ *actors.Connection, toks [][]byte, reason error) { drops.add(toks, reason) }
	})
	peer := dialRaw(t, certs, addr)
	c := wait(t, conns, "the server's connection")

	// read reads the next n tokens from the peer and checks their numbers,
	// starting at first.
	read := func(first uint64, n int) {
		t.Helper()
		next := first
		partial, err := readTokens(peer, 64<<10, nil, func(tok []byte) bool {
			id, ok := tokenID(tok)
			if !ok || id != next {
				t.Fatalf("the peer read token %d (intact: %v, %d bytes) where %d was next", id, ok, len(tok), next)
			}
			next++
			return next < first+uint64(n)
		})
		if err != nil || next != first+uint64(n) {
			t.Fatalf("the peer read tokens %d to %d of %d to %d, then %v (%d bytes of a frame)",
				first, next, first, first+uint64(n), err, partial)
		}
	}
	waitUntil(t, "the new connection's queue is empty", func() bool { return c.Queued() == 0 })
	if !c.Send(makeToken(0, big)) {
		t.Fatalf("Send refused a token of %d bytes on an empty queue (MaxQueue %d)", big, maxQueue)
	}
	read(0, 1)
	waitUntil(t, "the queue is empty again", func() bool { return c.Queued() == 0 })
	if !c.SendBatch([][]byte{makeToken(1, small), makeToken(2, small), makeToken(3, small)}) {
		t.Fatalf("SendBatch refused three tokens of %d bytes on an empty queue (MaxQueue %d)", small, maxQueue)
	}
	read(1, 3)

	select {
	case err := <-errs:
		t.Fatalf("the connection failed: %v", err)
	default:
	}
	if c.IsDead() {
		t.Fatal("the connection is dead")
	}
	drops.mu.Lock()
	defer drops.mu.Unlock()
	if len(drops.notSent)+len(drops.maybeSent)+len(drops.other) > 0 {
		t.Fatalf("dropped: not sent %v, maybe sent %v, other reasons %v", drops.notSent, drops.maybeSent, drops.other)
	}
}
