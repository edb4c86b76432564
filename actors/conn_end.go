package actors

import (
	"crypto/tls"
	"errors"
	"net"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tokenserver/tokenserver/supervisor"
	"github.com/tokenserver/tokenserver/wire"
)

// The end of a connection actor. There are two ways in, and one way out:
//
//   - drain, the clean close (Close, the peer's end, remoteClose to
//     reconnect): the gate closes, what is queued is written, our side is
//     shut, and the peer's end is awaited (at most Limits.CloseTimeout);
//   - die, everything else (a failure, a forced close, a close during the
//     dial or the handshake, a stop from outside): the gate closes, the
//     socket is aborted, the pumps are told to stop, and what was not
//     written is handed back;
//   - finish, once the pumps (and the dial) have ended: the error event if
//     one is owed, connDown with every frame Send took and was not written,
//     and the stop.
//
// closeGate is the one place where the actor closes the gate: it wakes the
// WaitDrain callers, waits for the Sends inside it, and takes their frames.

// ending is what the actor records of its end as it comes.
type ending struct {
	err      error  // the failure; nil for a clean end
	reported bool   // err's error event was sent
	asked    bool   // the close was asked for: no reconnection after it
	cause    string // why it ended, for a supervisor
	// resumable: a client's token/2 connection broke; its session goes on
	// over the next connection.
	resumable bool
	// dropReason, if set, is the reason of every token reported dropped
	// (ErrSessionExpired), instead of maybe sent or not sent.
	dropReason error
}

// fault records err as the connection's failure, unless it failed already
// (one error event per connection).
func (a *connActor) fault(err error) {
	if err == nil || a.end.err != nil {
		return
	}
	a.end.err = err
	if a.end.cause == "" {
		a.end.cause = err.Error()
	}
	a.cfg.log.Debug("connection failed", "conn", a.h.id, "remote", a.h.RemoteAddr(), "err", err)
}

// reportError sends the error event, once: with now, at once (bad input:
// the tokens before it are handed on already); else once the reader has
// ended, so that every chunk it read is delivered first (the pump posts its
// chunks before its end) and a token the peer wrote in full is never lost.
func (a *connActor) reportError(ctx actor.Context, now bool) {
	if a.end.err == nil || a.end.reported || (!now && a.reader != nil) {
		return
	}
	a.end.reported = true
	ctx.Send(a.cfg.owner, connFailed{a.h, a.end.err})
}

// close is a close asked for: clean once open, at once before (nothing to
// flush).
func (a *connActor) close(ctx actor.Context) {
	switch a.phase {
	case phaseDialing, phaseHandshaking, phaseGreeting:
		a.die(ctx, nil)
	case phaseOpen:
		a.drain(ctx)
	}
}

// closeGate closes the gate (Send returns false from now on), wakes the
// WaitDrain callers, waits until no Send is inside, and takes the frames
// Send took: into the outbox while the connection still writes (a clean
// close flushes them), else handed back unsent.
func (a *connActor) closeGate(ctx actor.Context) {
	s := a.h.shared
	s.gate.close()
	s.wakeWaiters()
	s.gate.waitEmpty()
	a.takeSends(ctx)
}

// drain is the clean close: flush what is queued, shut our side, wait for
// the peer's.
func (a *connActor) drain(ctx actor.Context) {
	if a.phase != phaseOpen {
		return
	}
	a.phase = phaseDraining
	a.in.creditWait.Stop()
	a.closeGate(ctx) // what Send took before the close is flushed too
	if !a.out.writing && a.out.big == nil {
		a.flushed(ctx)
	}
}

// shutWrite shuts our side once everything is written, so that the peer
// sees our end and closes its side, which the reader sees (a wait bounded
// by the close timeout). Over TLS, tls.Conn.CloseWrite sends close_notify
// (no TCP FIN) under crypto/tls's own 5 s write deadline; over TCP,
// CloseWrite sends FIN. Either may block on a peer that reads nothing, so
// it runs on a goroutine of its own, never on the one that runs the actor
// (a pump's, or a Send caller's: connection actors run inline), and the
// write side ends when it returns (writeShut). A conn that cannot
// half-close (net.Pipe, a user's net.Conn) is closed at once.
func (a *connActor) shutWrite(ctx actor.Context) {
	cw, ok := a.conn.(interface{ CloseWrite() error })
	if !ok {
		a.writer = nil
		abortConn(a.conn)
		a.finish(ctx)
		return
	}
	post := a.post(ctx)
	go func() { post(writeShut{cw.CloseWrite()}) }()
	if a.reader != nil {
		// The deadline ends a reader blocked in Read; the timer also ends
		// one that waits for read credit (a handler that returns none,
		// reading paused), which never reads again to see the peer's end.
		_ = a.conn.SetReadDeadline(time.Now().Add(a.cfg.limits.CloseTimeout))
		a.closeWait.Start(ctx, a.cfg.limits.CloseTimeout)
	}
}

// onWriteShut: our side is shut (or could not be: then the peer will not
// see our end, and its is not awaited).
func (a *connActor) onWriteShut(ctx actor.Context, err error) {
	a.writer = nil
	if err != nil {
		abortConn(a.conn)
	}
	a.finish(ctx)
}

// stopReading ends the reader after the close timeout: the peer did not
// close its side in time, or the reader could not see it.
func (a *connActor) stopReading() {
	if a.reader == nil {
		return
	}
	a.reader.Stop()
	abortConn(a.conn)
}

// abortConn closes conn at once. A *tls.Conn's Close first sends
// close_notify, with crypto/tls's own 5 s write deadline, from the calling
// goroutine: to a peer that reads nothing (a slow consumer, a peer that does
// not close) that blocks for 5 s the goroutine that runs the actor. After a
// failure, or once our side is shut, there is nothing left to say: the
// socket under the TLS layer is closed instead, and the pumps end on its
// error.
func abortConn(conn net.Conn) {
	if tc, ok := conn.(*tls.Conn); ok {
		_ = tc.NetConn().Close()
		return
	}
	_ = conn.Close()
}

// die is the one way a connection actor ends other than cleanly: the gate
// closes, waiters wake, timers stop, the socket is aborted, the pumps (or
// the dial) are told to stop, and what was queued is handed back (what the
// writer holds, once its end says what it wrote). With a non-nil err the
// connection failed: its error event comes once the reader has ended.
func (a *connActor) die(ctx actor.Context, err error) {
	if a.phase >= phaseClosing {
		return
	}
	a.fault(err)
	a.phase = phaseClosing
	a.decide(errGreetingOver) // a read pump waiting in a token/2 greeting
	a.in.creditWait.Stop()
	a.in.budgetWait.Stop()
	a.closeWait.Stop()
	if s := a.sess; s != nil {
		s.ackTimer.Stop()
		s.endWait.Stop()
		s.expiry.Stop()
	}
	a.out.unsendQueue(a.h.shared, a.codec) // older than what the gate still holds
	a.closeGate(ctx)
	a.dropIO()
	a.reportError(ctx, false)
	a.finish(ctx)
}

// dropIO ends what the actor started on its socket: the dial (its
// dialReady finishes), the socket, and both pumps, whose ends come back as
// messages.
func (a *connActor) dropIO() {
	if a.cancelDial != nil {
		a.cancelDial()
	}
	if a.conn != nil {
		abortConn(a.conn)
	}
	if a.reader != nil {
		a.reader.Stop()
	}
	a.closeWriter()
}

// finish ends the actor once nothing it started runs: it reports the end
// to the owner, with the frames that were never written, and stops. Under a
// supervisor, an end that was not asked for is a failure: the supervisor
// connects again.
func (a *connActor) finish(ctx actor.Context) {
	if a.phase == phaseDone || a.reader != nil || a.writer != nil || a.cancelDial != nil {
		return
	}
	a.phase = phaseDone
	a.in.creditWait.Stop()
	a.closeWait.Stop()
	if a.codec == nil {
		// It ended before its protocol was known: what Send took is handed
		// back encoded in token/1, which only the owner reads.
		a.codec = wire.Token1
	}
	a.closeGate(ctx) // closed already; takes what still waits
	if a.conn != nil {
		abortConn(a.conn) // our side is shut, or needs no goodbye
	}
	a.reportError(ctx, true)
	down := connDown{c: a.h, hadError: a.end.err != nil, codec: a.codec, dropReason: a.end.dropReason,
		handedOver: a.handedOver, resumable: a.end.resumable}
	switch {
	case a.sess != nil && a.cfg.dial != nil:
		// A client's session goes back to the client actor, whole.
		down.session = a.sessionOut()
	case a.sess != nil:
		// A server's session is over: what its client did not
		// acknowledge is reported, written (maybe sent) then not.
		st := a.sessionOut()
		split := skipFrames(st.frames, st.last+1-min(st.last+1, st.first))
		down.maybeSent, down.unsent = st.frames[:len(st.frames)-len(split)], split
	case a.given != nil:
		// The dial failed, or the server spoke token/1: the session the
		// owner gave comes back.
		down.session, a.given = a.given, nil
	}
	maybe, unsent := a.out.takeDropped(a.h.shared, a.codec)
	down.maybeSent = append(down.maybeSent, maybe...)
	down.unsent = append(down.unsent, unsent...)
	ctx.Send(a.cfg.owner, down)
	if a.cfg.supervised && !a.end.asked {
		cause := a.end.cause
		if cause == "" {
			cause = "connection closed by the server"
		}
		ctx.Send(ctx.Parent(), &supervisor.Fail{Cause: cause})
	}
	ctx.Stop(a.self)
}

// stopped: stopped from outside (a supervisor, the owner, the system). The
// actor dies at once and finishes without waiting for its pumps, whose last
// messages will not be handled: the writer's batch counts as maybe sent, and
// a chunk the reader posts meanwhile is lost with the socket. Every frame
// Send took is still handed back (the sends stack is taken once the gate is
// empty). Whoever stopped it decides what comes next: no supervisor.Fail.
func (a *connActor) stopped(ctx actor.Context) {
	if a.phase == phaseDone {
		return
	}
	a.end.asked = true
	if a.cancelDial != nil { // dialing: cancel, and close what it made
		a.cancelDial()
		if r := <-a.dialed; r.conn != nil {
			_ = r.conn.Close()
		}
		a.cancelDial = nil
	}
	a.die(ctx, nil)
	if a.out.writing {
		if a.sess != nil {
			a.retain() // reported with the rest of what was not acknowledged
		} else {
			a.out.failInFlight(a.h.shared, a.codec, nil, 0)
		}
	}
	a.reader, a.writer = nil, nil
	a.finish(ctx)
}

// errGreetingOver ends the read pump of a connection that ends in its token/2
// greeting.
var errGreetingOver = errors.New("tokenserver: connection ended in its token/2 greeting")
