package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/scheduler"
)

// timer sends its actor one timerFired after a delay, through Proto.Actor's
// scheduler. Every actor here uses it for every wait. A timer that fired just
// before it was stopped or restarted is recognised by its generation and
// ignored.
type timer struct {
	cancel scheduler.CancelFunc
	gen    uint64
}

// timerFired is the message a timer sends.
type timerFired struct {
	t   *timer
	gen uint64
}

// start (re)starts the timer.
func (t *timer) start(ctx actor.Context, d time.Duration) {
	t.stop()
	t.gen++
	t.cancel = scheduler.NewTimerScheduler(ctx.ActorSystem().Root).SendOnce(d, ctx.Self(), timerFired{t, t.gen})
}

// stop cancels the timer if it runs.
func (t *timer) stop() {
	if t.cancel != nil {
		t.cancel()
		t.cancel = nil
	}
}

// running reports whether the timer is started and has not fired.
func (t *timer) running() bool { return t.cancel != nil }

// fired reports whether m is this timer's current firing; it is then done.
func (t *timer) fired(m timerFired) bool {
	if m.t != t || m.gen != t.gen || t.cancel == nil {
		return false
	}
	t.cancel = nil
	return true
}
