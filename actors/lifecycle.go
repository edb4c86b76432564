package actors

import (
	"context"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
)

// lifecycle is what a Server and a Client share: the PID of their actor,
// their status, and the end of their life (Shutdown, Done).
type lifecycle struct {
	pid    *actor.PID
	system *actor.ActorSystem
	owned  bool // the actor system is private to this handle
	status statusCell
	done   chan struct{}
	gone   atomic.Bool // Shutdown was called
}

// init prepares a lifecycle whose actor starts at once (status CONNECTING).
func (l *lifecycle) init(system *actor.ActorSystem, owned bool) {
	l.system, l.owned, l.done = system, owned, make(chan struct{})
	l.status.store(CONNECTING)
}

// PID is the PID of the server or client actor.
func (l *lifecycle) PID() *actor.PID { return l.pid }

// Status returns OFFLINE, CLOSED, CONNECTING or ONLINE.
func (l *lifecycle) Status() Status { return l.status.load() }

// Done is closed once Shutdown has finished.
func (l *lifecycle) Done() <-chan struct{} { return l.done }

// shutdown closes with closeFn, then asks the actor to stop once everything
// it started has stopped, and waits for that or for ctx.
func (l *lifecycle) shutdown(ctx context.Context, closeFn func() bool) error {
	closeFn()
	if l.gone.CompareAndSwap(false, true) {
		l.system.Root.Send(l.pid, shutdownRequest{})
	}
	select {
	case <-l.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stopped runs when the actor has stopped: the private system goes too.
func (l *lifecycle) stopped() {
	if l.owned {
		l.system.Shutdown()
	}
	close(l.done)
}
