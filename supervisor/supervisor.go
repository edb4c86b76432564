package supervisor

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/scheduler"
)

// ErrNoChild is returned by NewProps when the child props are nil.
var ErrNoChild = errors.New("supervisor: child props are nil")

// causeSupervisorStopping is the Stopped.Cause of a child that was stopped
// because its supervisor stopped (StopChild, Stop, Poison, parent stopping).
const causeSupervisorStopping = "supervisor stopping"

// Config configures a supervisor.
type Config struct {
	// Policy is the backoff policy; it must be valid (see Policy.Validate).
	Policy Policy
	// Rand is the source of jitter. Nil means a randomly seeded source per
	// supervisor. A seeded source gives reproducible delays. NewProps wraps it
	// so that supervisors spawned from the same Props may share it safely;
	// nothing else may use it concurrently.
	Rand *rand.Rand
	// OnEvent, if set, is called with every event, inside the supervisor's
	// Receive: it must not block, and a panic in it fails the supervisor.
	OnEvent func(Event)
	// Listener, if set, is sent every event as a message, with the
	// supervisor as sender (ctx.Sender() in the listener). The listener
	// should not reply: a reply would be forwarded to the child.
	Listener *actor.PID
}

// NewProps returns the props of a supervisor actor for child. It validates
// cfg.Policy and returns its error (wrapping ErrInvalidPolicy) if invalid, or
// ErrNoChild if child is nil.
//
// The supervisor spawns the child when it starts, watches it, and:
//
//   - when the child reported Fail (or panicked) and then terminated, it
//     publishes Stopped{Failed: true}, asks its Backoff for a delay and
//     publishes Restarting and spawns the child again after that delay with
//     an actor timer, or publishes GaveUp and stops itself;
//   - when the child terminated without reporting Fail (a clean stop), it
//     publishes Stopped{Failed: false} and stops itself, no restart;
//   - on StopChild, or when it is stopped, it cancels any pending restart and
//     stops the child, then itself.
//
// A child that panics is stopped (not restarted in place by Proto.Actor) and
// counts as a failure whose Cause is fmt.Sprint of the panic value; the
// supervisor is the child's SupervisorStrategy.
//
// Every other message sent to the supervisor is forwarded to the current
// child with ctx.Forward (the sender is kept), so the supervisor PID can
// stand in for the child's. While no child is running (a restart is pending,
// or the child has just terminated) such messages are dropped to dead
// letters: a DeadLetterEvent is published, and a request gets a
// DeadLetterResponse, so a RequestFuture fails at once with
// actor.ErrDeadLetter rather than timing out.
func NewProps(child *actor.Props, cfg Config) (*actor.Props, error) {
	if child == nil {
		return nil, ErrNoChild
	}
	if err := cfg.Policy.Validate(); err != nil {
		return nil, err
	}
	var shared *rand.Rand
	if cfg.Rand != nil {
		// Same sequence as cfg.Rand (rand.Rand draws everything from
		// Uint64), safe when several supervisors share these props.
		shared = rand.New(&lockedSource{r: cfg.Rand})
	}
	return actor.PropsFromProducer(func() actor.Actor {
		rnd := shared
		if rnd == nil {
			rnd = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
		}
		return &supervisorActor{
			childProps: child,
			cfg:        cfg,
			backoff:    NewBackoff(cfg.Policy, rnd),
		}
	}), nil
}

// lockedSource makes a *rand.Rand usable as a rand.Source from several
// goroutines.
type lockedSource struct {
	mu sync.Mutex
	r  *rand.Rand
}

// Uint64 implements rand.Source.
func (s *lockedSource) Uint64() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.r.Uint64()
}

// incarnation is one spawned child.
type incarnation struct {
	pid    *actor.PID
	failed bool   // Fail received or panicked
	cause  string // first failure cause
	exited bool   // Terminated seen; decision waits for childExited
}

// childExited is sent by the supervisor to itself when the child has
// terminated. System messages (Terminated) overtake user messages (Fail), so
// the decision "failure or clean stop" is taken when this marker, queued
// behind any Fail the child sent before stopping, is received.
type childExited struct{ pid *actor.PID }

// restartDue is sent by the restart timer; gen guards against a timer that
// fired after it was cancelled.
type restartDue struct{ gen uint64 }

type supervisorActor struct {
	childProps *actor.Props
	cfg        Config
	backoff    *Backoff
	timers     *scheduler.TimerScheduler

	cur      *incarnation         // nil while no child is running
	cancel   scheduler.CancelFunc // pending restart timer, or nil
	gen      uint64
	stopping bool
}

var (
	_ actor.Actor              = (*supervisorActor)(nil)
	_ actor.SupervisorStrategy = (*supervisorActor)(nil)
)

// Receive implements actor.Actor.
func (s *supervisorActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		// The root context is safe to use from the timer goroutine.
		s.timers = scheduler.NewTimerScheduler(ctx.ActorSystem().Root)
		s.start(ctx, 0)
	case *actor.Stopping, *actor.Restarting:
		// Children are stopped by Proto.Actor right after this.
		s.shutdown(ctx)
	case *actor.Stopped:
		s.cancelTimer()
	case *actor.Terminated:
		s.terminated(ctx, msg.Who)
	case childExited:
		s.exited(ctx, msg.pid)
	case restartDue:
		if msg.gen == s.gen && s.cancel != nil && !s.stopping {
			s.cancel = nil
			s.start(ctx, s.backoff.Attempt())
		}
	case *Fail:
		if msg != nil {
			s.fail(ctx, msg.Cause)
		}
	case Fail:
		s.fail(ctx, msg.Cause)
	case *StopChild, StopChild:
		s.stopping = true
		s.cancelTimer()
		ctx.Stop(ctx.Self())
	case *actor.DeadLetterResponse:
		// An event sent to a Listener that is gone; nothing to do.
	default:
		s.forward(ctx)
	}
}

// HandleFailure implements actor.SupervisorStrategy: Proto.Actor calls it,
// inside the supervisor's mailbox, when the child panics. The child is
// stopped and the panic recorded as the failure cause.
func (s *supervisorActor) HandleFailure(system *actor.ActorSystem, sup actor.Supervisor, child *actor.PID, _ *actor.RestartStatistics, reason, _ interface{}) {
	if s.cur != nil && s.cur.pid.Equal(child) && !s.cur.failed {
		s.cur.failed = true
		s.cur.cause = fmt.Sprint(reason)
	}
	system.EventStream.Publish(&actor.SupervisorEvent{Child: child, Reason: reason, Directive: actor.StopDirective})
	sup.StopChildren(child)
}

// start spawns the child; attempt is reported in Started.
func (s *supervisorActor) start(ctx actor.Context, attempt int) {
	pid, err := s.spawn(ctx)
	if err != nil {
		s.failed(ctx, "spawn failed: "+err.Error())
		return
	}
	ctx.Watch(pid)
	s.cur = &incarnation{pid: pid}
	s.backoff.Up(time.Now())
	s.emit(ctx, &Started{Child: pid, Attempt: attempt})
}

// spawn spawns the child, turning a panic of its producer into an error.
func (s *supervisorActor) spawn(ctx actor.Context) (pid *actor.PID, err error) {
	defer func() {
		if r := recover(); r != nil {
			pid, err = nil, fmt.Errorf("%v", r)
		}
	}()
	return ctx.SpawnPrefix(s.childProps, "child"), nil
}

func (s *supervisorActor) fail(ctx actor.Context, cause string) {
	if s.cur == nil {
		return
	}
	if sender := ctx.Sender(); sender != nil && !sender.Equal(s.cur.pid) {
		return // not from the child
	}
	if !s.cur.failed {
		s.cur.failed = true
		s.cur.cause = cause
	}
}

// terminated handles *actor.Terminated. It arrives twice per child (as
// watcher and as parent); only the first one for the current child counts.
func (s *supervisorActor) terminated(ctx actor.Context, who *actor.PID) {
	inc := s.cur
	if inc == nil || inc.exited || !inc.pid.Equal(who) {
		return
	}
	inc.exited = true
	if s.stopping {
		s.cur = nil
		s.emitStopped(ctx, inc)
		return
	}
	ctx.Send(ctx.Self(), childExited{pid: who})
}

// exited decides, once any Fail from the child has been received, between a
// restart and a clean stop.
func (s *supervisorActor) exited(ctx actor.Context, pid *actor.PID) {
	inc := s.cur
	if inc == nil || !inc.pid.Equal(pid) {
		return
	}
	s.cur = nil
	s.emitStopped(ctx, inc)
	if !inc.failed {
		s.stopping = true
		ctx.Stop(ctx.Self())
		return
	}
	s.failed(ctx, inc.cause)
}

// failed schedules a restart after the backoff delay, or gives up.
func (s *supervisorActor) failed(ctx actor.Context, cause string) {
	attempt, delay, ok := s.backoff.Next(time.Now())
	if !ok {
		s.emit(ctx, &GaveUp{Attempts: attempt, Cause: cause})
		s.stopping = true
		ctx.Stop(ctx.Self())
		return
	}
	s.emit(ctx, &Restarting{Attempt: attempt, Delay: delay})
	s.cancelTimer()
	s.cancel = s.timers.SendOnce(delay, ctx.Self(), restartDue{gen: s.gen})
}

// shutdown runs when the supervisor stops or is restarted by its own parent.
func (s *supervisorActor) shutdown(ctx actor.Context) {
	s.stopping = true
	s.cancelTimer()
	if inc := s.cur; inc != nil && inc.exited {
		// Terminated seen but childExited will not be processed any more.
		s.cur = nil
		s.emitStopped(ctx, inc)
	}
}

func (s *supervisorActor) cancelTimer() {
	if s.cancel != nil {
		s.cancel()
		s.cancel = nil
	}
	s.gen++ // a timer that already fired is ignored
}

func (s *supervisorActor) forward(ctx actor.Context) {
	if s.cur != nil && !s.cur.exited {
		ctx.Forward(s.cur.pid)
		return
	}
	ctx.ActorSystem().EventStream.Publish(&actor.DeadLetterEvent{
		PID:     ctx.Self(),
		Message: ctx.Message(),
		Sender:  ctx.Sender(),
	})
}

func (s *supervisorActor) emitStopped(ctx actor.Context, inc *incarnation) {
	cause := inc.cause
	if !inc.failed && s.stopping {
		cause = causeSupervisorStopping
	}
	s.emit(ctx, &Stopped{Child: inc.pid, Cause: cause, Failed: inc.failed})
}

func (s *supervisorActor) emit(ctx actor.Context, ev Event) {
	if s.cfg.OnEvent != nil {
		s.cfg.OnEvent(ev)
	}
	if s.cfg.Listener != nil {
		ctx.Request(s.cfg.Listener, ev)
	}
}
