package actors

import (
	"context"
	"reflect"
	"runtime"
	"slices"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tokenserver/tokenserver/actors/internal/dispatch"
)

// lifecycle is what a Server and a Client share: the PID of their actor,
// their status, the requests of the handle, and the end of their life
// (Shutdown, Done).
type lifecycle struct {
	pid    *actor.PID
	system *actor.ActorSystem
	owned  bool // the actor system is private to this handle
	pool   *dispatch.WorkerPool
	done   chan struct{}

	status     atomic.Int32 // a Status; written by the actor only
	asked      atomic.Int32 // a request the actor has not taken yet
	shut       atomic.Bool  // Shutdown was called
	inCallback atomic.Int32 // user callbacks running now
	stats      *stats       // counts (Stats, metrics)
}

// init prepares a lifecycle whose actor starts at once (status CONNECTING).
func (l *lifecycle) init(system *actor.ActorSystem, owned bool) {
	l.system, l.owned, l.done = system, owned, make(chan struct{})
	l.pool = dispatch.NewWorkerPool()
	l.status.Store(int32(CONNECTING))
}

// PID is the PID of the server or client actor.
func (l *lifecycle) PID() *actor.PID { return l.pid }

// Status returns OFFLINE, CLOSED, CONNECTING or ONLINE. Right after Close
// returned true it is CLOSED, right after Connect returned true CONNECTING.
func (l *lifecycle) Status() Status {
	switch request(l.asked.Load()) {
	case reqClose:
		return CLOSED
	case reqConnect:
		return CONNECTING
	}
	return l.current()
}

// Done is closed once Shutdown has finished.
func (l *lifecycle) Done() <-chan struct{} { return l.done }

// current is the status the actor set.
func (l *lifecycle) current() Status { return Status(l.status.Load()) }

// set is the actor's: it moves to s.
func (l *lifecycle) set(s Status) { l.status.Store(int32(s)) }

// closed is the actor's: it moves to OFFLINE and is about to emit close,
// which answers a Close still pending too.
func (l *lifecycle) closed() {
	l.set(OFFLINE)
	l.take(reqClose)
}

// take is the actor's: the request r is being acted on.
func (l *lifecycle) take(r request) { l.asked.CompareAndSwap(int32(r), int32(reqNone)) }

// beginCycleClose is the actor's: it is about to deliver the close of a
// failed attempt (or listen) that does not end the reconnection (or listen
// retry). It reports false when a request is pending: a Close then ends the
// cycle, and its own close follows.
func (l *lifecycle) beginCycleClose() bool {
	return l.asked.CompareAndSwap(int32(reqNone), int32(reqCycleClose))
}

// endCycleClose is the actor's, once that close has been delivered: it
// returns the request that landed meanwhile (reqClose: the close just
// delivered answers it), or reqNone.
func (l *lifecycle) endCycleClose() request {
	if l.asked.CompareAndSwap(int32(reqCycleClose), int32(reqNone)) {
		return reqNone
	}
	return request(l.asked.Load())
}

// askClose leaves a close request if closable says the status allows it (a
// pending Connect is always closable) and reports whether it did.
func (l *lifecycle) askClose(closable func(Status) bool) bool {
	for {
		r := l.asked.Load()
		switch request(r) {
		case reqClose:
			return false
		case reqNone, reqCycleClose:
			if !closable(l.current()) {
				return false
			}
		}
		if l.asked.CompareAndSwap(r, int32(reqClose)) {
			l.system.Root.Send(l.pid, closeRequest{})
			return true
		}
	}
}

// askConnect leaves a connect request, sent as msg, when the status is
// OFFLINE, nothing is pending and allowed agrees, and reports whether it did.
func (l *lifecycle) askConnect(msg any, allowed bool) bool {
	if l.shut.Load() || !allowed || l.current() != OFFLINE {
		return false
	}
	r := l.asked.Load()
	if request(r) != reqNone && request(r) != reqCycleClose {
		return false
	}
	if !l.asked.CompareAndSwap(r, int32(reqConnect)) {
		return false
	}
	l.system.Root.Send(l.pid, msg)
	return true
}

// shutdown closes with closeFn, then asks the actor to stop once everything
// it started has stopped, and waits for that or for ctx. Called from inside
// one of this handle's callbacks, it cannot wait (the actor is busy with the
// caller): it returns ErrInCallback at once and the shutdown completes when
// the callback returns.
func (l *lifecycle) shutdown(ctx context.Context, closeFn func() bool) error {
	closeFn()
	if l.shut.CompareAndSwap(false, true) {
		l.system.Root.Send(l.pid, shutdownRequest{})
	}
	if l.inCallback.Load() > 0 && inCallbackHere() {
		return ErrInCallback
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
	l.stats.stopMetrics()
	if l.owned {
		l.system.Shutdown()
	}
	l.pool.Close()
	close(l.done)
}

// callbackRunners are the entry addresses of the emitter's functions that
// call user callbacks: a goroutine with one of them on its stack is inside a
// callback. They are the functions themselves, taken by address: a rename
// cannot break them. (They recover panics, so they are never inlined.)
var callbackRunners = [...]uintptr{
	funcEntry((*emitter).run),
	funcEntry((*emitter).runToken),
	funcEntry((*emitter).runTokens),
}

// funcEntry is the entry address of the function f.
func funcEntry(f any) uintptr {
	return runtime.FuncForPC(reflect.ValueOf(f).Pointer()).Entry()
}

// inCallbackHere reports whether the calling goroutine is inside a user
// callback: below one of callbackRunners on its stack. It is only asked when
// a callback of this handle is running, so it costs nothing on the hot path.
func inCallbackHere() bool {
	pcs := make([]uintptr, 64)
	for skip := 2; ; skip += len(pcs) {
		n := runtime.Callers(skip, pcs)
		frames := runtime.CallersFrames(pcs[:n])
		for {
			f, more := frames.Next()
			if slices.Contains(callbackRunners[:], f.Entry) {
				return true
			}
			if !more {
				break
			}
		}
		if n < len(pcs) {
			return false
		}
	}
}
