package flowcontrol

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
)

// TestPeerThatReadsNothingIsCut: a server pushes numbered tokens of 64 KiB to
// a raw TLS peer that reads nothing. The peer is cut as a slow consumer by
// whichever limit comes first, the write timeout or the hard cap of the
// queue, with bounded memory; the tokens Send took and that never reached
// the peer are reported by OnDropped. Once cut, the peer reads what reached
// its socket, and the count is exact: every token Send took was read by the
// peer or reported (ErrNotSent or ErrMaybeSent), none twice, and none read
// was reported not sent.
func TestPeerThatReadsNothingIsCut(t *testing.T) {
	const size = 64 << 10
	for _, tc := range []struct {
		name   string
		limits actors.Limits
		// paced: the producer waits for room (WaitDrain), so the queue
		// never nears the hard cap and the write timeout cuts the peer.
		paced bool
		cause error
	}{
		{"write timeout first", actors.Limits{HighWaterMark: 1 << 20, WriteTimeout: 500 * time.Millisecond},
			true, tlsio.ErrWriteTimeout},
		{"hard cap first", actors.Limits{HighWaterMark: 256 << 10, MaxQueue: 2 << 20, WriteTimeout: time.Minute},
			false, actors.ErrQueueFull},
	} {
		t.Run(tc.name, func(t *testing.T) {
			certs := newCerts(t)
			conns := make(chan *actors.Connection, 1)
			errs := make(chan error, 4)
			closes := make(chan bool, 4)
			var drops dropLog
			_, addr := startServer(t, certs, newSystem(t), func(o *actors.ServerOptions) {
				o.Limits = tc.limits
				o.OnConnection = func(c *actors.Connection) { put(conns, c) }
				o.OnConnectionError = func(_ *actors.Connection, err error) { put(errs, err) }
				o.OnDropped = func(_ *actors.Connection, toks [][]byte, reason error) { drops.add(toks, reason) }
				o.OnConnectionClose = func(_ *actors.Connection, hadError bool) { put(closes, hadError) }
			})
			heap := startHeapSampler(2 * time.Millisecond)
			peer := dialRaw(t, certs, addr)
			c := wait(t, conns, "the server's connection")

			// The producer: Send until the connection refuses or dies,
			// waiting for room first when paced. Bounded: 10,000 tokens.
			accepted := make(chan int, 1)
			var maxQueued int
			var mu sync.Mutex
			start := time.Now()
			go func() {
				n := 0
				for ; n < 10000; n++ {
					if tc.paced {
						if err := c.WaitDrain(context.Background()); err != nil {
							break
						}
					}
					if !c.Send(makeToken(uint64(n), size)) {
						break
					}
					mu.Lock()
					maxQueued = max(maxQueued, c.Queued())
					mu.Unlock()
				}
				accepted <- n
			}()
			err := wait(t, errs, "the slow consumer error")
			cutAfter := time.Since(start)
			n := wait(t, accepted, "the producer's end")
			if !wait(t, closes, "the close") {
				t.Error("the close after an error has hadError false")
			}
			figures := heap.Stop()
			if !errors.Is(err, actors.ErrSlowConsumer) || !errors.Is(err, tc.cause) {
				t.Fatalf("error %v, want ErrSlowConsumer and %v", err, tc.cause)
			}
			if code := actors.ErrorCode(err); code != actors.CodeSlowConsumer {
				t.Errorf("code %q, want %q", code, actors.CodeSlowConsumer)
			}

			// The peer reads what reached it, up to the cut.
			read := map[uint64]int{}
			next := uint64(0)
			_ = peer.SetReadDeadline(time.Now().Add(deadline))
			partial, rerr := readTokens(peer, 64<<10, nil, func(tok []byte) bool {
				id, ok := tokenID(tok)
				if !ok || id != next {
					t.Fatalf("the peer read token %d (intact: %v) where %d was next", id, ok, next)
				}
				read[id]++
				next++
				return true
			})
			notSent, maybeSent := drops.counts()
			t.Logf("cut after %v: %v; Send took %d tokens of 64 KiB (up to %s queued): the peer read %d (then %v, %d bytes of a frame cut short), %d reported not sent, %d maybe sent; heap (in process): %v",
				cutAfter.Round(time.Millisecond), err, n, mib(uint64(maxQueued)), len(read), rerr, partial, notSent, maybeSent, figures)

			drops.mu.Lock()
			defer drops.mu.Unlock()
			if len(drops.other) > 0 {
				t.Errorf("dropped with other reasons: %v", drops.other)
			}
			reported := map[uint64]int{}
			for _, id := range drops.notSent {
				reported[id]++
				if read[id] > 0 {
					t.Errorf("token %d was read by the peer and reported not sent", id)
				}
			}
			both := 0
			for _, id := range drops.maybeSent {
				reported[id]++
				if read[id] > 0 {
					both++
				}
			}
			for id, k := range reported {
				if id >= uint64(n) || k > 1 {
					t.Errorf("token %d reported %d times; Send took tokens 0 to %d", id, k, n-1)
				}
			}
			for id := range uint64(n) {
				if read[id] == 0 && reported[id] == 0 {
					t.Errorf("token %d was taken by Send, never read and never reported", id)
				}
			}
			if len(read)+len(reported)-both != n {
				t.Errorf("Send took %d tokens; the peer read %d, %d were reported (%d of them read too): they do not add up",
					n, len(read), len(reported), both)
			}
			if notSent == 0 {
				t.Error("no token was reported not sent: the connection was cut with nothing queued, the test did not push it")
			}
			// Memory: the queue is bounded by the high-water mark (paced) or
			// the hard cap, plus one token; the heap by that plus 16 MiB.
			l := tc.limits
			limit := l.MaxQueue
			if tc.paced {
				limit = l.HighWaterMark
			}
			if maxQueued > limit+size+64 {
				t.Errorf("up to %s queued, over %s", mib(uint64(maxQueued)), mib(uint64(limit)))
			}
			if bound := uint64(limit + 16<<20); figures.Growth() > bound {
				t.Errorf("the heap grew by %s, over %s", mib(figures.Growth()), mib(bound))
			}
			if tc.paced && cutAfter < l.WriteTimeout {
				t.Errorf("cut after %v, before the write timeout %v", cutAfter, l.WriteTimeout)
			}
			if !tc.paced && cutAfter >= l.WriteTimeout {
				t.Errorf("cut after %v, not before the write timeout %v", cutAfter, l.WriteTimeout)
			}
		})
	}
}
