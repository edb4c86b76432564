// Package timer is the one timer mechanism of the actors of package actors:
// a Timer sends its actor a Fired message after a delay, through
// Proto.Actor's scheduler (which the supervisor package uses too), so that a
// wait is a message like any other and never a goroutine of its own.
package timer

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/scheduler"
)

// Timer sends its actor one Fired after a delay. A Fired sent just before
// the timer was stopped or started again is recognised by its generation and
// refused by Accept. The zero value is a stopped timer. A Timer belongs to
// one actor and is used from its Receive only.
type Timer struct {
	cancel scheduler.CancelFunc
	gen    uint64
}

// Fired is the message a Timer sends its actor.
type Fired struct {
	t   *Timer
	gen uint64
}

// Start (re)starts the timer: ctx's actor gets a Fired after d.
func (t *Timer) Start(ctx actor.Context, d time.Duration) {
	t.Stop()
	t.gen++
	t.cancel = scheduler.NewTimerScheduler(ctx.ActorSystem().Root).SendOnce(d, ctx.Self(), Fired{t, t.gen})
}

// Stop cancels the timer if it runs.
func (t *Timer) Stop() {
	if t.cancel != nil {
		t.cancel()
		t.cancel = nil
	}
}

// Running reports whether the timer is started and its Fired not accepted.
func (t *Timer) Running() bool { return t.cancel != nil }

// Accept reports whether m is this timer's current firing; the timer is
// then done.
func (t *Timer) Accept(m Fired) bool {
	if m.t != t || m.gen != t.gen || t.cancel == nil {
		return false
	}
	t.cancel = nil
	return true
}
