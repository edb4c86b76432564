package actors

import (
	"fmt"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
)

// The handler PID of the options: the check at construction, and the watch
// for events that end as dead letters at it.
//
// Proto.Actor delivers a message to a PID through the process registry of
// the system that sends it: a PID at the system's own address (or at
// protoLocalAddress, the address of every system without remote) is looked
// up by Id among that system's actors; a PID at another address goes to the
// address resolvers the system has (Proto.Actor remote registers one when
// it starts). Whatever the registry does not find goes to the dead letters:
// no error, and nothing logged unless the system's logger says it.

// protoLocalAddress is the address of a Proto.Actor system that runs no
// remote (its process registry's localAddress, which it does not export):
// every such system has it, so a PID of another system in the same process
// cannot be told apart by its address.
const protoLocalAddress = "nonhost"

// checkHandler returns an ErrInvalidOptions error if events sent to handler
// from system could not reach it: system is nil (the handle would run in a
// private system of its own, where no actor of the user runs), or system's
// process registry does not find handler (a local actor of another system,
// or one that stopped; a node that system reaches through no remote). A nil
// handler is fine.
//
// A PID of another local system whose Id happens to name an actor of system
// too is not caught: Proto.Actor's PIDs do not say which system they are
// of.
func checkHandler(handler *actor.PID, system *actor.ActorSystem) error {
	switch {
	case handler == nil:
		return nil
	case system == nil:
		return fmt.Errorf("%w: Handler %s without Runtime.System: events would be sent from a private actor system, "+
			"where the handler receives nothing; set Runtime.System to the handler's actor system", ErrInvalidOptions, pidString(handler))
	}
	if _, ok := system.ProcessRegistry.Get(handler); ok {
		return nil
	}
	if handler.Address == system.Address() || handler.Address == protoLocalAddress {
		return fmt.Errorf("%w: Handler %s is no actor of Runtime.System (a PID of another actor system receives nothing there, "+
			"nor a stopped actor); set Runtime.System to the handler's actor system, and spawn the handler before this call",
			ErrInvalidOptions, pidString(handler))
	}
	return fmt.Errorf("%w: Handler %s is on node %q, which Runtime.System cannot reach: start Proto.Actor remote "+
		"on Runtime.System (remote.NewRemote(system, config).Start()), or set Runtime.System to the handler's actor system",
		ErrInvalidOptions, pidString(handler), handler.Address)
}

// watchDeadLetters makes e log, once, the first of its events that ends as a
// dead letter at its handler in system (the handler stopped, or its node is
// out of reach), with what to do about it; owner names the handle ("server",
// "client", "connection"). It costs nothing on the path of an event that is
// delivered: Proto.Actor publishes a DeadLetterEvent only for a message it
// could not deliver, and the filter here is a type check and two string
// compares. stopWatching ends it.
func (e *emitter) watchDeadLetters(system *actor.ActorSystem, owner string) {
	if e.handler == nil {
		return
	}
	handler, log := e.handler, e.log
	var logged atomic.Bool
	sub := system.EventStream.SubscribeWithPredicate(func(ev any) {
		if !logged.CompareAndSwap(false, true) {
			return
		}
		log.Error("events for the handler PID end as dead letters (logged once): it stopped, or Runtime.System cannot "+
			"deliver to it, and its connections stop reading once Limits.ReadWindow chunks wait for its credit; keep the "+
			"handler running until the "+owner+" is shut down, in Runtime.System or on a node reached through Proto.Actor "+
			"remote; to see each dead letter, subscribe to Runtime.System's EventStream for *actor.DeadLetterEvent",
			"owner", owner, "handler", pidString(handler), "event", fmt.Sprintf("%T", ev.(*actor.DeadLetterEvent).Message))
	}, func(ev any) bool {
		dl, ok := ev.(*actor.DeadLetterEvent)
		return ok && dl.PID != nil && dl.PID.Id == handler.Id && dl.PID.Address == handler.Address
	})
	e.unwatch = func() { system.EventStream.Unsubscribe(sub) }
}

// stopWatching ends the watch of watchDeadLetters, if there is one. The
// owner actor calls it when it stops.
func (e *emitter) stopWatching() {
	if e.unwatch != nil {
		e.unwatch()
		e.unwatch = nil
	}
}

// pidString is pid as address/id.
func pidString(pid *actor.PID) string { return pid.Address + "/" + pid.Id }
