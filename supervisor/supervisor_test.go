package supervisor

import (
	"errors"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

const waitFor = 5 * time.Second

// newSystem returns an actor system that logs nothing. Its dead letter
// throttle runs a goroutine per throttle period after a dead letter; a short
// period keeps that goroutine from outliving the test (goleak).
func newSystem(t *testing.T) *actor.ActorSystem {
	t.Helper()
	return actor.NewActorSystem(
		actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
			return slog.New(slog.DiscardHandler)
		}),
		actor.WithDeadLetterThrottleInterval(10*time.Millisecond),
	)
}

// Messages understood by testChild (sent through the supervisor).
type (
	failMsg  struct{ cause string }
	panicMsg struct{ value any }
	stopMsg  struct{}
	whoMsg   struct{} // responds with the child's PID
)

// testChild returns child props; onStart, if set, runs on every start with
// the 1-based incarnation number.
func testChild(spawns *atomic.Int32, onStart func(ctx actor.Context, n int)) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor {
		n := int(spawns.Add(1))
		return actor.ReceiveFunc(func(ctx actor.Context) {
			switch msg := ctx.Message().(type) {
			case *actor.Started:
				if onStart != nil {
					onStart(ctx, n)
				}
			case string:
				ctx.Respond("echo:" + msg)
			case whoMsg:
				ctx.Respond(ctx.Self())
			case failMsg:
				ctx.Send(ctx.Parent(), &Fail{Cause: msg.cause})
				ctx.Stop(ctx.Self())
			case panicMsg:
				panic(msg.value)
			case stopMsg:
				ctx.Stop(ctx.Self())
			}
		})
	})
}

type harness struct {
	t      *testing.T
	system *actor.ActorSystem
	events chan Event
	sup    *actor.PID
	done   <-chan struct{} // closed when sup terminates
}

func start(t *testing.T, child *actor.Props, p Policy, rnd *rand.Rand) *harness {
	t.Helper()
	h := &harness{t: t, system: newSystem(t), events: make(chan Event, 1024)}
	props, err := NewProps(child, Config{
		Policy:  p,
		Rand:    rnd,
		OnEvent: func(ev Event) { h.events <- ev },
	})
	if err != nil {
		t.Fatalf("NewProps: %v", err)
	}
	h.sup = h.system.Root.Spawn(props)
	h.done = watch(t, h.system, h.sup)
	t.Cleanup(func() {
		select {
		case <-h.done:
			return // already stopped
		default:
		}
		if err := h.system.Root.StopFuture(h.sup).Wait(); err != nil {
			t.Errorf("stopping supervisor: %v", err)
		}
	})
	return h
}

// watch returns a channel closed when pid terminates.
func watch(t *testing.T, system *actor.ActorSystem, pid *actor.PID) <-chan struct{} {
	t.Helper()
	done := make(chan struct{})
	w := system.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch msg := ctx.Message().(type) {
		case *actor.Started:
			ctx.Watch(pid)
		case *actor.Terminated:
			if msg.Who.Equal(pid) {
				close(done)
			}
		}
	}))
	t.Cleanup(func() { _ = system.Root.StopFuture(w).Wait() })
	return done
}

func (h *harness) next() Event {
	h.t.Helper()
	select {
	case ev := <-h.events:
		return ev
	case <-time.After(waitFor):
		h.t.Fatalf("no event within %v", waitFor)
		return nil
	}
}

func nextAs[T Event](h *harness) T {
	h.t.Helper()
	ev := h.next()
	got, ok := ev.(T)
	if !ok {
		var want T
		h.t.Fatalf("event %T %+v, want %T", ev, ev, want)
	}
	return got
}

func (h *harness) noEvent(d time.Duration) {
	h.t.Helper()
	select {
	case ev := <-h.events:
		h.t.Fatalf("unexpected event %T %+v", ev, ev)
	case <-time.After(d):
	}
}

func (h *harness) waitStopped() {
	h.t.Helper()
	select {
	case <-h.done:
	case <-time.After(waitFor):
		h.t.Fatalf("supervisor did not stop within %v", waitFor)
	}
}

func fastPolicy() Policy {
	return Policy{
		Initial:    2 * time.Millisecond,
		Max:        20 * time.Millisecond,
		Multiplier: 2,
		MaxRetries: 5,
		ResetAfter: time.Minute,
	}
}

func TestNewPropsErrors(t *testing.T) {
	var n atomic.Int32
	if _, err := NewProps(nil, Config{Policy: DefaultPolicy()}); !errors.Is(err, ErrNoChild) {
		t.Errorf("nil child: %v, want ErrNoChild", err)
	}
	bad := DefaultPolicy()
	bad.Jitter = 2
	_, err := NewProps(testChild(&n, nil), Config{Policy: bad})
	var pe *PolicyError
	if !errors.Is(err, ErrInvalidPolicy) || !errors.As(err, &pe) || pe.Field != "Jitter" {
		t.Errorf("bad policy: %v, want ErrInvalidPolicy for Jitter", err)
	}
	if _, err := NewProps(testChild(&n, nil), Config{}); !errors.Is(err, ErrInvalidPolicy) {
		t.Errorf("zero policy: %v, want ErrInvalidPolicy", err)
	}
}

func TestFailRestartsChild(t *testing.T) {
	var spawns atomic.Int32
	h := start(t, testChild(&spawns, nil), fastPolicy(), nil)

	s1 := nextAs[*Started](h)
	if s1.Attempt != 0 || s1.Child == nil {
		t.Fatalf("first Started = %+v", s1)
	}
	h.system.Root.Send(h.sup, failMsg{cause: "disk on fire"})

	st := nextAs[*Stopped](h)
	if !st.Failed || st.Cause != "disk on fire" || !st.Child.Equal(s1.Child) {
		t.Fatalf("Stopped = %+v, want failed %q of %v", st, "disk on fire", s1.Child)
	}
	r := nextAs[*Restarting](h)
	if r.Attempt != 1 || r.Delay != 2*time.Millisecond {
		t.Fatalf("Restarting = %+v, want attempt 1 delay 2ms", r)
	}
	s2 := nextAs[*Started](h)
	if s2.Attempt != 1 || s2.Child.Equal(s1.Child) {
		t.Fatalf("second Started = %+v (first child %v)", s2, s1.Child)
	}
	if n := spawns.Load(); n != 2 {
		t.Fatalf("child spawned %d times, want 2", n)
	}

	// A second failure continues the series.
	h.system.Root.Send(h.sup, &failMsg{cause: "again"}) // pointer: unknown to child, ignored
	h.system.Root.Send(h.sup, failMsg{cause: "again"})
	if st := nextAs[*Stopped](h); !st.Failed || st.Cause != "again" || !st.Child.Equal(s2.Child) {
		t.Fatalf("Stopped = %+v", st)
	}
	if r := nextAs[*Restarting](h); r.Attempt != 2 || r.Delay != 4*time.Millisecond {
		t.Fatalf("Restarting = %+v, want attempt 2 delay 4ms", r)
	}
	s3 := nextAs[*Started](h)
	if s3.Attempt != 2 {
		t.Fatalf("third Started = %+v", s3)
	}

	// Stopping the supervisor stops the child.
	if err := h.system.Root.StopFuture(h.sup).Wait(); err != nil {
		t.Fatal(err)
	}
	if st := nextAs[*Stopped](h); st.Failed || st.Cause != "supervisor stopping" || !st.Child.Equal(s3.Child) {
		t.Fatalf("Stopped = %+v, want clean stop by supervisor", st)
	}
	h.waitStopped()
	h.noEvent(10 * time.Millisecond)
}

func TestPanicRestartsChild(t *testing.T) {
	var spawns atomic.Int32
	h := start(t, testChild(&spawns, nil), fastPolicy(), nil)

	s1 := nextAs[*Started](h)
	h.system.Root.Send(h.sup, panicMsg{value: "kaboom"})
	st := nextAs[*Stopped](h)
	if !st.Failed || st.Cause != "kaboom" || !st.Child.Equal(s1.Child) {
		t.Fatalf("Stopped = %+v, want failed with cause kaboom", st)
	}
	if r := nextAs[*Restarting](h); r.Attempt != 1 {
		t.Fatalf("Restarting = %+v", r)
	}
	s2 := nextAs[*Started](h)

	// A non-string panic value is formatted with fmt.Sprint.
	h.system.Root.Send(h.sup, panicMsg{value: errors.New("bad state")})
	if st := nextAs[*Stopped](h); !st.Failed || st.Cause != "bad state" || !st.Child.Equal(s2.Child) {
		t.Fatalf("Stopped = %+v", st)
	}
	nextAs[*Restarting](h)
	s3 := nextAs[*Started](h)

	// The restarted child works.
	res, err := h.system.Root.RequestFuture(h.sup, whoMsg{}, waitFor).Result()
	if err != nil || !res.(*actor.PID).Equal(s3.Child) {
		t.Fatalf("who = %v, %v; want %v", res, err, s3.Child)
	}
}

func TestGivesUpAfterMaxRetries(t *testing.T) {
	var spawns atomic.Int32
	// The child fails as soon as it starts, every time.
	child := testChild(&spawns, func(ctx actor.Context, n int) {
		ctx.Send(ctx.Parent(), Fail{Cause: "no luck " + string(rune('0'+n))})
		ctx.Stop(ctx.Self())
	})
	p := fastPolicy()
	p.MaxRetries = 2
	p.Jitter = 0.5
	h := start(t, child, p, rand.New(rand.NewPCG(1, 2)))

	ref := rand.New(rand.NewPCG(1, 2))
	for attempt := 0; attempt <= 2; attempt++ {
		if s := nextAs[*Started](h); s.Attempt != attempt {
			t.Fatalf("Started = %+v, want attempt %d", s, attempt)
		}
		cause := "no luck " + string(rune('1'+attempt))
		if st := nextAs[*Stopped](h); !st.Failed || st.Cause != cause {
			t.Fatalf("Stopped = %+v, want failed %q", st, cause)
		}
		if attempt == 2 {
			break
		}
		r := nextAs[*Restarting](h)
		if want := p.Delay(attempt+1, ref); r.Attempt != attempt+1 || r.Delay != want {
			t.Fatalf("Restarting = %+v, want attempt %d delay %v", r, attempt+1, want)
		}
	}
	g := nextAs[*GaveUp](h)
	if g.Attempts != 3 || g.Cause != "no luck 3" {
		t.Fatalf("GaveUp = %+v, want 3 attempts, cause %q", g, "no luck 3")
	}
	h.waitStopped()
	if n := spawns.Load(); n != 3 {
		t.Fatalf("child spawned %d times, want 3", n)
	}
	h.noEvent(10 * time.Millisecond)
}

func TestIntensityGivesUp(t *testing.T) {
	var spawns atomic.Int32
	child := testChild(&spawns, func(ctx actor.Context, _ int) {
		ctx.Send(ctx.Parent(), &Fail{Cause: "flap"})
		ctx.Stop(ctx.Self())
	})
	p := fastPolicy()
	p.Unlimited, p.MaxRetries = true, 0
	p.MaxRestarts, p.Within = 2, time.Minute
	h := start(t, child, p, nil)
	for i := 0; i < 3; i++ {
		nextAs[*Started](h)
		nextAs[*Stopped](h)
		if i < 2 {
			nextAs[*Restarting](h)
		}
	}
	if g := nextAs[*GaveUp](h); g.Attempts != 3 || g.Cause != "flap" {
		t.Fatalf("GaveUp = %+v", g)
	}
	h.waitStopped()
}

func TestCleanStopStopsSupervisor(t *testing.T) {
	var spawns atomic.Int32
	h := start(t, testChild(&spawns, nil), fastPolicy(), nil)
	s := nextAs[*Started](h)
	h.system.Root.Send(h.sup, stopMsg{})
	st := nextAs[*Stopped](h)
	if st.Failed || st.Cause != "" || !st.Child.Equal(s.Child) {
		t.Fatalf("Stopped = %+v, want a clean stop", st)
	}
	h.waitStopped()
	h.noEvent(20 * time.Millisecond)
	if n := spawns.Load(); n != 1 {
		t.Fatalf("child spawned %d times, want 1", n)
	}
}

func TestStopChildDuringBackoff(t *testing.T) {
	const delay = 400 * time.Millisecond
	var spawns atomic.Int32
	p := fastPolicy()
	p.Initial, p.Max = delay, delay
	h := start(t, testChild(&spawns, nil), p, nil)

	// A restartDue that reached the stopped supervisor would show up here.
	lateTimer := make(chan struct{}, 1)
	sub := h.system.EventStream.Subscribe(func(ev any) {
		if dl, ok := ev.(*actor.DeadLetterEvent); ok {
			if _, ok := dl.Message.(restartDue); ok {
				select {
				case lateTimer <- struct{}{}:
				default:
				}
			}
		}
	})
	defer h.system.EventStream.Unsubscribe(sub)

	nextAs[*Started](h)
	h.system.Root.Send(h.sup, failMsg{cause: "x"})
	nextAs[*Stopped](h)
	if r := nextAs[*Restarting](h); r.Delay != delay {
		t.Fatalf("Restarting = %+v", r)
	}
	asked := time.Now()
	h.system.Root.Send(h.sup, StopChild{})
	select {
	case <-h.done:
	case <-time.After(delay / 2):
		t.Fatalf("supervisor still running %v after StopChild", delay/2)
	}
	if took := time.Since(asked); took >= delay/2 {
		t.Fatalf("StopChild took %v", took)
	}
	// Past the original restart time: no restart, no timer message.
	select {
	case ev := <-h.events:
		t.Fatalf("event after StopChild: %T %+v", ev, ev)
	case <-lateTimer:
		t.Fatal("restart timer fired after StopChild")
	case <-time.After(delay + delay/2):
	}
	if n := spawns.Load(); n != 1 {
		t.Fatalf("child spawned %d times, want 1", n)
	}
}

func TestStopChildWhileRunning(t *testing.T) {
	var spawns atomic.Int32
	h := start(t, testChild(&spawns, nil), fastPolicy(), nil)
	s := nextAs[*Started](h)
	h.system.Root.Send(h.sup, &StopChild{})
	if st := nextAs[*Stopped](h); st.Failed || !st.Child.Equal(s.Child) || st.Cause != "supervisor stopping" {
		t.Fatalf("Stopped = %+v", st)
	}
	h.waitStopped()
}

func TestForwardsToChild(t *testing.T) {
	var spawns atomic.Int32
	p := fastPolicy()
	p.Initial, p.Max = time.Hour, time.Hour // the restart stays pending
	h := start(t, testChild(&spawns, nil), p, nil)
	s := nextAs[*Started](h)

	// Requests to the supervisor reach the child, with the sender kept.
	for _, word := range []string{"a", "bb", "ccc"} {
		res, err := h.system.Root.RequestFuture(h.sup, word, waitFor).Result()
		if err != nil || res != "echo:"+word {
			t.Fatalf("request %q: %v, %v", word, res, err)
		}
	}
	res, err := h.system.Root.RequestFuture(h.sup, whoMsg{}, waitFor).Result()
	if err != nil || !res.(*actor.PID).Equal(s.Child) {
		t.Fatalf("who = %v, %v; want %v", res, err, s.Child)
	}

	// While a restart is pending, messages go to dead letters: a request
	// fails at once instead of timing out.
	h.system.Root.Send(h.sup, failMsg{cause: "down"})
	nextAs[*Stopped](h)
	nextAs[*Restarting](h)
	began := time.Now()
	_, err = h.system.Root.RequestFuture(h.sup, "lost", waitFor).Result()
	if !errors.Is(err, actor.ErrDeadLetter) {
		t.Fatalf("request while restart pending: err = %v, want ErrDeadLetter", err)
	}
	if took := time.Since(began); took > waitFor/2 {
		t.Fatalf("dead letter took %v", took)
	}
}

func TestListenerReceivesEvents(t *testing.T) {
	system := newSystem(t)
	type got struct {
		ev     any
		sender *actor.PID
	}
	ch := make(chan got, 16)
	listener := system.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if ev, ok := ctx.Message().(Event); ok {
			ch <- got{ev, ctx.Sender()}
		}
	}))
	t.Cleanup(func() { _ = system.Root.StopFuture(listener).Wait() })

	var spawns atomic.Int32
	props, err := NewProps(testChild(&spawns, nil), Config{Policy: fastPolicy(), Listener: listener})
	if err != nil {
		t.Fatal(err)
	}
	sup := system.Root.Spawn(props)
	done := watch(t, system, sup)
	t.Cleanup(func() { _ = system.Root.StopFuture(sup).Wait() })

	recv := func() got {
		t.Helper()
		select {
		case g := <-ch:
			if !g.sender.Equal(sup) {
				t.Fatalf("event %T from %v, want sender %v", g.ev, g.sender, sup)
			}
			return g
		case <-time.After(waitFor):
			t.Fatal("no event")
			return got{}
		}
	}
	if _, ok := recv().ev.(*Started); !ok {
		t.Fatal("first event is not *Started")
	}
	system.Root.Send(sup, panicMsg{value: 42})
	if st, ok := recv().ev.(*Stopped); !ok || st.Cause != "42" || !st.Failed {
		t.Fatalf("want *Stopped with cause 42, got %+v", st)
	}
	if _, ok := recv().ev.(*Restarting); !ok {
		t.Fatal("want *Restarting")
	}
	if _, ok := recv().ev.(*Started); !ok {
		t.Fatal("want *Started")
	}
	system.Root.Send(sup, stopMsg{})
	if st, ok := recv().ev.(*Stopped); !ok || st.Failed {
		t.Fatalf("want clean *Stopped, got %+v", st)
	}
	select {
	case <-done:
	case <-time.After(waitFor):
		t.Fatal("supervisor did not stop")
	}
}

func TestChildProducerPanicCountsAsFailure(t *testing.T) {
	var produced atomic.Int32
	child := actor.PropsFromProducer(func() actor.Actor {
		if produced.Add(1) == 1 {
			panic("cannot build")
		}
		return actor.ReceiveFunc(func(actor.Context) {})
	})
	h := start(t, child, fastPolicy(), nil)
	if r := nextAs[*Restarting](h); r.Attempt != 1 {
		t.Fatalf("Restarting = %+v", r)
	}
	if s := nextAs[*Started](h); s.Attempt != 1 {
		t.Fatalf("Started = %+v", s)
	}
}

func TestFailFromOtherSenderIgnored(t *testing.T) {
	var spawns atomic.Int32
	h := start(t, testChild(&spawns, nil), fastPolicy(), nil)
	nextAs[*Started](h)
	// A Fail whose sender is not the child does not mark the child failed.
	sent := make(chan struct{})
	stranger := h.system.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(*actor.Started); ok {
			ctx.Request(h.sup, &Fail{Cause: "not yours"})
			close(sent)
		}
	}))
	t.Cleanup(func() { _ = h.system.Root.StopFuture(stranger).Wait() })
	select {
	case <-sent:
	case <-time.After(waitFor):
		t.Fatal("stranger did not start")
	}
	// Queued behind the stranger's Fail.
	h.system.Root.Send(h.sup, stopMsg{})
	if st := nextAs[*Stopped](h); st.Failed || strings.Contains(st.Cause, "not yours") {
		t.Fatalf("Stopped = %+v, want clean stop", st)
	}
	h.waitStopped()
}
