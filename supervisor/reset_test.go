package supervisor

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// The supervisor resets its backoff after a stable period (issue 20: a
// supervisor that never called Backoff.Up, or ignored ResetAfter, passed
// every other test). With MaxRetries 2, a child that stays up longer than
// ResetAfter before each failure is restarted every time as attempt 1 and
// the supervisor never gives up; once it fails fast, the series counts on
// from there and gives up at MaxRetries+1.
func TestResetAfterStablePeriod(t *testing.T) {
	const (
		resetAfter = 150 * time.Millisecond
		stable     = 2 * resetAfter // up this long, then fails
		stableRuns = 4              // more failures than MaxRetries allows in a row
	)
	var spawns atomic.Int32
	// Incarnations 1..stableRuns stay up for stable, then fail; the next
	// ones fail as soon as they start.
	child := testChild(&spawns, func(ctx actor.Context, n int) {
		if n > stableRuns {
			ctx.Send(ctx.Parent(), &Fail{Cause: "fast"})
			ctx.Stop(ctx.Self())
			return
		}
		root, self := ctx.ActorSystem().Root, ctx.Self()
		time.AfterFunc(stable, func() { root.Send(self, failMsg{cause: "after a stable period"}) })
	})
	p := fastPolicy()
	p.MaxRetries = 2
	p.ResetAfter = resetAfter
	h := start(t, child, p, nil)

	if s := nextAs[*Started](h); s.Attempt != 0 {
		t.Fatalf("first Started = %+v", s)
	}
	for i := 1; i <= stableRuns; i++ {
		if st := nextAs[*Stopped](h); !st.Failed || st.Cause != "after a stable period" {
			t.Fatalf("failure %d: Stopped = %+v", i, st)
		}
		// Up longer than ResetAfter: the series starts again.
		if r := nextAs[*Restarting](h); r.Attempt != 1 {
			t.Fatalf("failure %d after a stable period: Restarting = %+v, want attempt 1", i, r)
		}
		if s := nextAs[*Started](h); s.Attempt != 1 {
			t.Fatalf("restart %d: Started = %+v, want attempt 1", i, s)
		}
	}
	// Fast failures count on from the last reset: attempt 2, then give up.
	nextAs[*Stopped](h)
	if r := nextAs[*Restarting](h); r.Attempt != 2 {
		t.Fatalf("fast failure: Restarting = %+v, want attempt 2", r)
	}
	nextAs[*Started](h)
	nextAs[*Stopped](h)
	if g := nextAs[*GaveUp](h); g.Attempts != 3 || g.Cause != "fast" {
		t.Fatalf("GaveUp = %+v, want 3 attempts, cause fast", g)
	}
	h.waitStopped()
	if n := spawns.Load(); n != stableRuns+2 {
		t.Fatalf("child spawned %d times, want %d", n, stableRuns+2)
	}
}
