// Package supervisor is a generic supervisor actor for Proto.Actor with an
// exponential backoff policy: initial and maximum delay, multiplier, jitter,
// a retry limit, a reset after a stable period, and restart intensity (at most
// N restarts within a period). It starts a child, watches it, restarts it
// after the policy's delay when it fails, and publishes lifecycle events.
//
// It imports nothing of the rest of tokenserver.
//
// Supervise a child: [NewProps] returns the props of a supervisor for the
// child's props, and the supervisor's PID stands in for the child's.
//
//	policy := supervisor.DefaultPolicy() // then change what you need
//	props, err := supervisor.NewProps(childProps, supervisor.Config{
//		Policy:  policy,
//		OnEvent: func(ev supervisor.Event) { ... }, // *Started, *Stopped, *Restarting, *GaveUp
//	})
//	sup := ctx.Spawn(props) // use sup wherever the child's PID is needed
//
// A child fails by sending [Fail] to its parent and stopping, or by
// panicking; [StopChild] stops it for good. An actor that retries by itself
// (a client that reconnects) uses the policy alone, through [Backoff]:
//
//	b := supervisor.NewBackoff(policy, rand.New(rand.NewPCG(seed1, seed2)))
//	attempt, delay, ok := b.Next(time.Now()) // a failure: wait delay, or give up if !ok
//	b.Up(time.Now())                         // healthy again
//
// # Policy and Backoff
//
// Policy describes the delays; Policy.Delay is a pure function of the attempt
// number and a random source. Backoff is the attempt tracker built on it: Next
// records a failure and returns the next delay or says to give up, Up records
// that the supervised thing is healthy again (the counter is reset when it
// stays up for Policy.ResetAfter). Backoff takes the time as an argument and
// can be embedded by any actor that retries by itself, such as a client that
// reconnects. Proto.Actor's own NewExponentialBackoffStrategy is not used: it
// grows linearly, its jitter is sub-microsecond, and it has no cap and no
// retry limit.
//
// # The supervisor actor
//
// How the end of a child is classified:
//
//   - Failure: the child sends Fail{Cause} to its parent (ctx.Parent()) and
//     then stops itself, or the child panics (the supervisor is its
//     SupervisorStrategy; it stops the child and records fmt.Sprint of the
//     panic value as the cause). The supervisor publishes Stopped{Failed:
//     true}, then Restarting and, after the delay, Started; or GaveUp when the
//     policy forbids another restart, and then stops itself.
//   - Clean stop: the child stops without sending Fail. The supervisor
//     publishes Stopped{Failed: false} and stops itself; no restart.
//   - Asked: StopChild, or stopping the supervisor PID, cancels any pending
//     restart, stops the child (Stopped{Cause: "supervisor stopping"}) and
//     then the supervisor.
//
// Proto.Actor delivers *actor.Terminated (a system message) ahead of user
// messages already queued, so it can overtake the child's Fail. The supervisor
// therefore decides only after a marker it sends itself on Terminated has gone
// through its mailbox, behind any Fail the child sent before it stopped.
//
// Restarts are scheduled with an actor timer (scheduler.TimerScheduler
// SendOnce), never by sleeping inside Receive; the timer is cancelled when the
// supervisor stops, so no goroutine is left behind.
//
// Messages that are not the supervisor's own are forwarded to the current
// child with ctx.Forward, keeping the sender, so the supervisor's PID can stand
// in for the child's. While no child runs (a restart is pending) they are
// dropped to dead letters: a DeadLetterEvent is published on the event stream
// and a request is answered with a DeadLetterResponse (RequestFuture returns
// actor.ErrDeadLetter at once). Callers that must not lose messages should
// buffer them themselves until the next Started.
//
// Events (*Started, *Stopped, *Restarting, *GaveUp) are plain data, so they
// can become protobuf messages later. They go to Config.OnEvent, called
// inside the supervisor's Receive, and/or to Config.Listener, with the
// supervisor as sender.
package supervisor
