package timer

import (
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// An actor with two timers: the one started again takes only its last
// firing, the stopped one none.
func TestTimerFiresOnceAndStops(t *testing.T) {
	sys := actor.NewActorSystem()
	defer sys.Shutdown()
	var a, b Timer
	got := make(chan string, 8)
	pid := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *actor.Started:
			a.Start(ctx, time.Hour)
			a.Start(ctx, 10*time.Millisecond) // the first is replaced
			b.Start(ctx, 10*time.Millisecond)
			b.Stop()
		case Fired:
			switch {
			case a.Accept(m):
				got <- "a"
			case b.Accept(m):
				got <- "b"
			default:
				got <- "stale"
			}
		case string:
			if a.Running() || b.Running() {
				got <- "running"
			}
			got <- m
		}
	}))
	defer sys.Root.Stop(pid)
	select {
	case v := <-got:
		if v != "a" {
			t.Fatalf("got %q, want a", v)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("timer a did not fire")
	}
	time.Sleep(50 * time.Millisecond)
	sys.Root.Send(pid, "done")
	if v := <-got; v != "done" {
		t.Fatalf("got %q after a, want nothing more", v)
	}
}
