package flowcontrol

import (
	"context"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/actors"
)

// TestProducerWaitsForDrain: a server pushes 600 numbered tokens of 16 KiB
// (about 9.4 MiB, many times its 256 KiB high-water mark) to a raw TLS
// client that reads slowly (16 KiB, then a millisecond's pause). A producer
// that waits for room, with WaitDrain or with the drain event (OnDrain, once
// Queued() is past the high-water mark), is never cut: Send takes every token,
// the client reads them all in order, nothing is dropped, no error, and the
// queue stays within the high-water mark plus one token. The producer must
// have waited at least once, or the test proved nothing.
func TestProducerWaitsForDrain(t *testing.T) {
	const n, size, hwm = 600, 16 << 10, 256 << 10
	for _, mode := range []string{"WaitDrain", "OnDrain"} {
		t.Run(mode, func(t *testing.T) {
			certs := newCerts(t)
			conns := make(chan *actors.Connection, 1)
			errs := make(chan error, 4)
			drained := make(chan struct{}, 1)
			closes := make(chan bool, 1)
			var drops dropLog
			_, addr := startServer(t, certs, newSystem(t), func(o *actors.ServerOptions) {
				o.Limits.HighWaterMark = hwm
				o.OnConnection = func(c *actors.Connection) { put(conns, c) }
				o.OnConnectionError = func(_ *actors.Connection, err error) { put(errs, err) }
				o.OnDropped = func(_ *actors.Connection, toks [][]byte, reason error) { drops.add(toks, reason) }
				o.OnDrain = func(*actors.Connection) { put(drained, struct{}{}) }
				o.OnConnectionClose = func(_ *actors.Connection, hadError bool) { put(closes, hadError) }
			})
			client := dialRaw(t, certs, addr)
			c := wait(t, conns, "the server's connection")

			type result struct {
				sent, waits, maxQueued int
				err                    string
			}
			produced := make(chan result, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), deadline)
				defer cancel()
				var r result
				for i := range n {
					switch mode {
					case "WaitDrain":
						if c.Queued() > hwm {
							r.waits++
						}
						if err := c.WaitDrain(ctx); err != nil {
							r.err = "WaitDrain: " + err.Error()
							produced <- r
							return
						}
					case "OnDrain":
						// As on Node's write() returning false: past the
						// high-water mark, wait for the drain event. A
						// drain event from an earlier crossing may be
						// waiting in the channel: look again after it.
						if c.Queued() > hwm {
							r.waits++
						}
						for c.Queued() > hwm && r.err == "" {
							select {
							case <-drained:
							case <-ctx.Done():
								r.err = "no drain event after the queue passed the high-water mark"
							}
						}
						if r.err != "" {
							produced <- r
							return
						}
					}
					if !c.Send(makeToken(uint64(i), size)) {
						r.err = "Send refused a token"
						produced <- r
						return
					}
					r.sent++
					r.maxQueued = max(r.maxQueued, c.Queued())
				}
				produced <- r
			}()

			next := uint64(0)
			_ = client.SetReadDeadline(time.Now().Add(deadline))
			_, err := readTokens(client, 16<<10, func() { time.Sleep(time.Millisecond) }, func(tok []byte) bool {
				id, ok := tokenID(tok)
				if !ok || id != next {
					t.Fatalf("read token %d (intact: %v) where %d was next", id, ok, next)
				}
				next++
				return next < n
			})
			r := wait(t, produced, "the producer")
			t.Logf("%s: sent %d tokens of 16 KiB, waited %d times for room, up to %s queued (HighWaterMark %s); the client read %d",
				mode, r.sent, r.waits, mib(uint64(r.maxQueued)), mib(hwm), next)
			if r.err != "" {
				t.Fatalf("the producer stopped after %d tokens: %s", r.sent, r.err)
			}
			if err != nil || next != n {
				t.Fatalf("the client read %d of %d tokens, then %v", next, n, err)
			}
			select {
			case err := <-errs:
				t.Fatalf("the connection failed: %v", err)
			default:
			}
			if r.waits == 0 {
				t.Error("the producer never had to wait: the client did not read slowly enough to test anything")
			}
			if r.maxQueued > hwm+2*size+128 {
				t.Errorf("up to %s queued, over the high-water mark %s plus a token", mib(uint64(r.maxQueued)), mib(hwm))
			}
			// A clean close: the server's end, then the client's.
			if !c.Close() {
				t.Fatal("the connection died")
			}
			if extra, err := readTokens(client, 16<<10, nil, func([]byte) bool { t.Error("a token after the last"); return false }); err != nil || extra != 0 {
				t.Errorf("after the last token: %v (%d bytes of a frame)", err, extra)
			}
			_ = client.Close()
			if wait(t, closes, "the close") {
				t.Error("closed with hadError")
			}
			if notSent, maybe := drops.counts(); notSent+maybe > 0 || len(drops.other) > 0 {
				t.Errorf("dropped: %d not sent, %d maybe sent, %v", notSent, maybe, drops.other)
			}
		})
	}
}

// TestDrainEventFollowsEveryCrossing: whenever a producer sees Queued() past
// the high-water mark after its Send, a drain event follows, even when a
// write finished before the connection actor took the frame that crossed it
// (the actor then never saw the queue over the mark). 1,500 rounds against a
// client that reads at full speed: send 40 KiB tokens until Queued() passes
// 64 KiB, then wait for OnDrain. (Before the fix, about one round in 1,500
// under the race detector waited forever, with nothing queued and reading
// not paused.)
func TestDrainEventFollowsEveryCrossing(t *testing.T) {
	const rounds, hwm, size = 1500, 64 << 10, 40 << 10
	certs := newCerts(t)
	conns := make(chan *actors.Connection, 1)
	drained := make(chan struct{}, 1)
	_, addr := startServer(t, certs, newSystem(t), func(o *actors.ServerOptions) {
		o.Limits.HighWaterMark = hwm
		o.OnConnection = func(c *actors.Connection) { put(conns, c) }
		o.OnDrain = func(*actors.Connection) { put(drained, struct{}{}) }
	})
	client := dialRaw(t, certs, addr)
	c := wait(t, conns, "the server's connection")
	readerDone := make(chan error, 1)
	go func() {
		_, err := readTokens(client, 64<<10, nil, func([]byte) bool { return true })
		readerDone <- err
	}()
	tok := make([]byte, size)
	slowest := time.Duration(0)
	for round := range rounds {
		for c.Queued() <= hwm {
			if !c.Send(tok) {
				t.Fatalf("round %d: Send refused a token", round)
			}
		}
		start := time.Now()
		select {
		case <-drained:
			slowest = max(slowest, time.Since(start))
		case <-time.After(deadline):
			t.Fatalf("round %d: no drain event %v after Queued() passed the high-water mark (now queued %d, read paused %v)",
				round, deadline, c.Queued(), c.ReadPaused())
		}
	}
	t.Logf("%d crossings of the high-water mark, each followed by a drain event (the slowest after %v)", rounds, slowest.Round(time.Millisecond))
	c.Close()
	if err := wait(t, readerDone, "the client's end"); err != nil {
		t.Errorf("the client's reading ended with %v", err)
	}
}
