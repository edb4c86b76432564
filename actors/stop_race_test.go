package actors

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// A connection actor stopped from outside (its PID stopped, as a supervisor
// or a stopping actor system does) while Send runs on another goroutine:
// every token for which Send returned true is written or reported, also one
// whose Send was inside the gate when the stop came. Each try stops the
// actor at another moment; the tries loop, bounded in count and time.

const (
	stopTries  = 300
	stopBudget = 20 * time.Second
	stopMaxTok = 200_000 // a sender's bound, should the stop never come
)

func TestSendRacingStopIsWrittenOrReported(t *testing.T) {
	sys := NewQuietSystem()
	defer sys.Shutdown()
	tryRepeatedly(t, stopTries, stopBudget, func(i int) { sendRacingStop(t, i, sys) })
}

// sendRacingStop is one try: a goroutine sends numbered tokens while the
// peer reads them; the actor is stopped once the peer has read try%40 of
// them, plus a spin of 0 to 50 µs.
func sendRacingStop(t *testing.T, try int, sys *actor.ActorSystem) {
	t.Helper()
	a, b := net.Pipe()
	var l ledger
	closes := make(chan bool, 1)
	c, err := NewConnection(a, ConnectionOptions{
		Runtime:   Runtime{System: sys},
		OnDropped: l.drop,
		OnClose:   func(had bool) { put(t, closes, had) },
	})
	if err != nil {
		t.Fatal(err)
	}
	peerDone := make(chan struct{})
	go func() { defer close(peerDone); readThenClose(b, 1<<30, &l) }()
	accepted := make(chan int, 1)
	go func() {
		i := 0
		for i < stopMaxTok && c.Send(numbered(uint64(i), orderSize(uint64(i)))) {
			i++
		}
		accepted <- i
	}()
	within(t, deadline, "the peer to read", func() bool { return l.count() >= try%40 })
	spin(time.Duration(try%11) * 5 * time.Microsecond)
	sys.Root.Stop(c.PID())
	n := recv(t, accepted, "the sender")
	recv(t, closes, "the close")
	recv(t, peerDone, "the peer")
	l.checkStopped(t, try, n)
	if q := c.shared.queued.Load(); q != 0 {
		t.Errorf("try %d: the queue count is %d after the end, want 0", try, q)
	}
}

// count is how many tokens the peer has read.
func (l *ledger) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.received)
}

// checkStopped verifies a try of TestSendRacingStopIsWrittenOrReported:
// the peer read tokens 0..r-1 in order; tokens d..accepted-1 were reported
// in order, maybe sent first; every token is read or reported (d <= r), and
// only a token reported maybe sent may have been read too.
func (l *ledger) checkStopped(t *testing.T, try, accepted int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.badToken != nil {
		t.Errorf("try %d: a corrupt token: %v", try, l.badToken)
	}
	for i, n := range l.received {
		if n != uint64(i) {
			t.Fatalf("try %d: the peer read token %d in place %d", try, n, i)
		}
	}
	r, d := len(l.received), accepted
	if len(l.dropped) > 0 {
		d = int(l.dropped[0])
	}
	for i, n := range l.dropped {
		if n != uint64(d+i) {
			t.Fatalf("try %d: dropped tokens %v..., not in order", try, l.dropped[:min(i+1, 10)])
		}
		if errors.Is(l.reasons[i], ErrNotSent) && int(n) < r {
			t.Errorf("try %d: token %d reported not sent, but the peer read it", try, n)
		}
	}
	switch last := d + len(l.dropped) - 1; {
	case d > r:
		t.Errorf("try %d: Send took %d tokens; tokens %d..%d were neither read by the peer nor reported (%d read, %d reported)",
			try, accepted, r, d-1, r, len(l.dropped))
	case len(l.dropped) > 0 && last != accepted-1:
		t.Errorf("try %d: Send took %d tokens; tokens %d..%d were neither read by the peer nor reported (%d read, %d reported)",
			try, accepted, last+1, accepted-1, r, len(l.dropped))
	}
}
