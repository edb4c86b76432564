package supervisor

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Event is a lifecycle event published by a supervisor: one of *Started,
// *Stopped, *Restarting or *GaveUp. Events carry plain data only (PIDs,
// strings, numbers), so that they can later be defined as protobuf messages
// and reach a listener on another node. An event value is shared between
// Config.OnEvent and Config.Listener and must not be modified.
//
// For one child incarnation the order is Started, then Stopped, then either
// Restarting (followed by the next Started once the delay has passed) or
// GaveUp, or nothing more when the stop was clean or asked for.
type Event interface {
	isEvent()
}

// Started is published when the supervisor has spawned a child.
type Started struct {
	// Child is the PID of the new child.
	Child *actor.PID
	// Attempt is 0 for the first start and n for the start that follows
	// Restarting{Attempt: n}.
	Attempt int
}

// Stopped is published when the child has terminated.
type Stopped struct {
	// Child is the PID of the child that terminated.
	Child *actor.PID
	// Cause is the cause given in Fail, or the panic value (formatted with
	// fmt.Sprint) for a child that panicked; for a stop that was not a
	// failure it is empty, or "supervisor stopping" when the supervisor
	// itself stopped the child.
	Cause string
	// Failed is true when the child reported Fail or panicked, and false for
	// a clean stop.
	Failed bool
}

// Restarting is published when a failed child will be started again after
// Delay.
type Restarting struct {
	// Attempt is the retry number in the current series, starting at 1.
	Attempt int
	// Delay is the backoff delay before the child is spawned again.
	Delay time.Duration
}

// GaveUp is published when the policy forbids another restart (retry limit
// or restart intensity exceeded). The supervisor stops right after.
type GaveUp struct {
	// Attempts is the number of failures counted in the series that ended,
	// including the last one: with only the retry limit in play this is
	// MaxRetries+1, i.e. the number of times the child was started.
	Attempts int
	// Cause is the cause of the last failure.
	Cause string
}

func (*Started) isEvent()    {}
func (*Stopped) isEvent()    {}
func (*Restarting) isEvent() {}
func (*GaveUp) isEvent()     {}

// Fail is sent by a child to its parent (ctx.Parent(), which is the
// supervisor) to report a failure, just before it stops itself: for example
// ctx.Send(ctx.Parent(), &supervisor.Fail{Cause: err.Error()}) followed by
// ctx.Stop(ctx.Self()). The supervisor then treats the stop as a failure and
// restarts the child according to its policy. Fail may be sent as a value or
// a pointer. Fail alone does not stop the child; it marks the current
// incarnation as failed, and the first Fail's Cause is kept.
type Fail struct {
	// Cause says what went wrong; it is reported in Stopped and GaveUp.
	Cause string
}

// StopChild asks the supervisor to stop its child and then itself,
// cancelling a pending restart. It may be sent as a value or a pointer.
// Stopping the supervisor PID (Stop, StopFuture, Poison) has the same effect.
type StopChild struct{}
