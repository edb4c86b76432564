package actors

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tokenserver/tokenserver/actors/internal/reconnectbuf"
	"github.com/tokenserver/tokenserver/actors/internal/timer"
	"github.com/tokenserver/tokenserver/supervisor"
	"github.com/tokenserver/tokenserver/wire"
)

// clientActor owns the client's status, its connection and its reconnect
// buffer, and delivers every event. A token goes from the connection actor to
// this actor to the user: two hops, as on the server.
//
// Without reconnection the client spawns one connection actor per connect; it
// dials, then owns the socket. With reconnection a supervisor actor spawns it
// and, when it ends without being asked to (a failed dial, a lost
// connection, remoteClose), spawns the next one after the backoff delay of
// the policy, until Close or until the policy gives up. The reconnect cycle,
// top to bottom:
//
//	connection ends     connDown: tokens not written go back to the buffer;
//	                    error, close events; status OFFLINE
//	supervisor decides  Stopped(cause), then Restarting(attempt, delay):
//	                    status CONNECTING, reconnecting event; or GaveUp
//	delay passes        supervisor.Started(child): the new connection dials
//	dialed              connUp: buffer flushed into it, in order, then it is
//	                    published to Send; status ONLINE, connect event
type clientActor struct {
	c       *Client
	opts    ClientOptions
	log     *slog.Logger
	ev      *emitter
	connCfg connConfig

	runner  *actor.PID  // the connection actor, or its supervisor
	connPID *actor.PID  // the current connection actor
	downPID *actor.PID  // the last connection actor whose connDown came
	conn    *Connection // the current connection, from connUp to connDown
	buf     reconnectbuf.Buffer
	// session is the client's token/2 session while no connection holds
	// it (nil with token/2 off); wantedBy is a connection that asked for it
	// while the last one still held it.
	session  *sessionState
	wantedBy *Connection
	hadError bool
	cause    string // why the last connection ended, for reconnect events
	closing  bool   // Close is in progress: its close event is owed
	answered bool   // unless that Close was answered by a close delivered already
	// connectAfter: a Connect came while the cycle stopped after an
	// answered Close; it dials after this delay once it has.
	connectAfter *time.Duration

	waitConnect timer.Timer // Connect(delay)
	shutdown    bool
	stopping    bool
}

// Receive handles one message.
func (a *clientActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.connCfg.owner = ctx.Self()
		a.startRunner(ctx)
	case connectRequest:
		a.onConnect(ctx, m.delay)
	case closeRequest:
		a.onClose(ctx)
	case timer.Fired:
		if a.waitConnect.Accept(m) {
			a.startRunner(ctx)
		}

	case *supervisor.Started, *supervisor.Stopped, *supervisor.Restarting, *supervisor.GaveUp:
		a.onSupervisor(ctx, m)
	case *actor.Terminated:
		// Terminated overtakes ordinary messages: finish behind what the
		// runner's actors sent before they ended.
		if a.runner != nil && m.Who.Equal(a.runner) {
			ctx.Send(ctx.Self(), runnerGone{m.Who})
		}
	case runnerGone:
		if a.runner != nil && m.pid.Equal(a.runner) {
			a.onRunnerGone(ctx)
		}

	case connUp:
		a.adopt(m.c)
		a.onUp(ctx, m.c)
	case connFrames:
		a.adopt(m.c)
		a.onFrames(ctx, m)
	case connFailed:
		a.adopt(m.c)
		a.onFailed(ctx, m)
	case connDrained:
		a.ev.drained(ctx, m.c)
	case connDown:
		a.adopt(m.c)
		a.onDown(ctx, m)
	case sessionWanted:
		a.wantedBy = m.c
		a.giveSession(ctx)

	case bufferedToken:
		a.onBuffered(ctx, m)
	case tokensDropped:
		a.ev.emit(ctx, droppedEvent(nil, m.tokens, m.reason), nil, m.reason)
	case shutdownRequest:
		a.onShutdown(ctx)
	case *actor.Stopped:
		a.waitConnect.Stop()
		a.ev.stopWatching()
		a.c.stopped()
	}
}

// onSupervisor handles what the reconnection's supervisor says.
func (a *clientActor) onSupervisor(ctx actor.Context, msg any) {
	switch m := msg.(type) {
	case *supervisor.Started:
		// The child may have dialed, failed and ended before this event
		// (a refused dial takes microseconds; the supervisor sends Started
		// after the spawn): a child whose connDown came is not current.
		if !a.closing && !(a.downPID != nil && a.downPID.Equal(m.Child)) {
			a.connPID = m.Child
		} // else: the supervisor stops it on StopChild, or it is gone
	case *supervisor.Stopped:
		if m.Failed {
			a.cause = m.Cause
		}
		// The connection is gone. Its connDown has come already (it was
		// sent before the supervisor could see the end), but the
		// supervisor's Started for it may have come after that connDown and
		// named it again: forget it, or Close would ask a dead actor.
		if a.connPID != nil && m.Child.Equal(a.connPID) {
			a.connPID = nil
		}
	case *supervisor.Restarting:
		if a.closing {
			ctx.Send(a.runner, &supervisor.StopChild{})
			return
		}
		a.c.set(CONNECTING)
		a.hadError = false
		a.ev.emit(ctx, &Reconnecting{Attempt: m.Attempt, Delay: m.Delay, Cause: a.cause}, nil, nil)
	case *supervisor.GaveUp:
		a.c.cycling.Store(false)
		a.dropBuffer(ctx, fmt.Errorf("%w after %d attempts: %s", ErrGaveUp, m.Attempts, m.Cause))
		// The supervisor stops itself now (its connection actor is gone
		// already) and sends nothing more: forget it before the event, so
		// that a Connect from OnGaveUp dials again.
		a.runner, a.connPID, a.conn = nil, nil, nil
		a.ev.emit(ctx, &ReconnectGaveUp{Attempts: m.Attempts, Cause: m.Cause}, nil, nil)
		a.maybeCloseDone(ctx)
		a.maybeStop(ctx)
	}
}

// onFailed: the error event of a connection, the current one's only.
func (a *clientActor) onFailed(ctx actor.Context, m connFailed) {
	if !a.isCurrent(m.c) {
		a.log.Debug("connection failed after the client closed", "err", m.err)
		return
	}
	a.hadError = true
	a.ev.emit(ctx, errorEvent(nil, m.err), m.c, m.err)
}

// onShutdown takes Shutdown: the actor stops once nothing runs.
func (a *clientActor) onShutdown(ctx actor.Context) {
	a.shutdown = true
	if a.runner != nil || a.waitConnect.Running() {
		a.c.set(CLOSED)
		a.beginClose(ctx)
	}
	a.maybeStop(ctx)
}

// adopt takes c, which speaks, for the current connection if none is
// known yet: under a supervisor a connection may speak before the
// supervisor's Started names it, and only one runs at a time.
func (a *clientActor) adopt(c *Connection) {
	if a.connPID == nil && a.runner != nil && !a.closing && a.opts.Reconnect != nil {
		a.connPID = c.PID()
	}
}

// isCurrent reports whether c is the client's current connection.
func (a *clientActor) isCurrent(c *Connection) bool {
	return a.connPID != nil && c.PID() != nil && c.PID().Equal(a.connPID)
}

func (a *clientActor) onConnect(ctx actor.Context, delay time.Duration) {
	// The request is taken after the status moved, so that Status() never
	// shows OFFLINE after Connect returned true.
	defer a.c.take(reqConnect)
	if a.closing && a.answered && a.c.current() == OFFLINE {
		// The cycle is stopping after a Close that a close delivered
		// already answered: connect once it has stopped.
		a.c.set(CONNECTING)
		a.connectAfter = &delay
		return
	}
	if a.c.current() != OFFLINE || a.runner != nil || a.closing {
		return
	}
	a.connect(ctx, delay)
}

// connect dials now or after delay.
func (a *clientActor) connect(ctx actor.Context, delay time.Duration) {
	a.c.set(CONNECTING)
	a.hadError = false
	if a.opts.Reconnect != nil {
		a.c.cycling.Store(true)
	}
	if delay <= 0 {
		a.startRunner(ctx)
		return
	}
	a.waitConnect.Start(ctx, delay)
}

// startRunner spawns the connection actor, under a supervisor with
// reconnection.
func (a *clientActor) startRunner(ctx actor.Context) {
	if a.c.current() != CONNECTING || a.runner != nil {
		return
	}
	props := dialingConnProps(ctx.ActorSystem(), a.connCfg)
	if a.opts.Reconnect == nil {
		a.runner = ctx.Spawn(props)
		a.connPID = a.runner
		return
	}
	sup, err := supervisor.NewProps(props, supervisor.Config{Policy: a.opts.Reconnect.Policy, Listener: ctx.Self()})
	if err != nil { // validated in NewClient
		panic(err)
	}
	a.c.cycling.Store(true)
	a.runner = ctx.Spawn(sup.Configure(actor.WithDispatcher(a.c.pool))) // its Started names the connection actor
}

// onUp flushes the reconnect buffer into the new connection, then publishes
// it to Send, so that tokens keep their order.
func (a *clientActor) onUp(ctx actor.Context, c *Connection) {
	if !a.isCurrent(c) || a.closing {
		c.Close() // Close came first
		return
	}
	a.conn = c
	a.c.set(ONLINE)
	sent, empty := a.buf.Flush(c.Send)
	a.c.buffered.Add(-sent)
	if empty { // else the connection died already: the rest waits for the next
		a.c.conn.Store(c)
	}
	a.ev.emit(ctx, connectedEvent(c), c, nil)
}

func (a *clientActor) onFrames(ctx actor.Context, m connFrames) {
	remoteClose := false
	for _, f := range m.frames {
		remoteClose = remoteClose || f.Kind == wire.KindRemoteClose
	}
	a.ev.deliverChunk(ctx, m) // the frames are the connection's again after it
	if remoteClose && a.opts.Reconnect != nil && a.isCurrent(m.c) {
		// The server is going away: close cleanly, and connect again after
		// the policy's delay.
		ctx.Send(m.c.PID(), closeToReconnect{})
	}
}

// onDown: a connection ended. What it never wrote goes back to the buffer
// (or is reported); then the close event, unless Close is in progress (its
// close event comes once everything has stopped).
func (a *clientActor) onDown(ctx actor.Context, m connDown) {
	a.c.stats.down(m.c, m.hadError)
	if m.session != nil {
		a.takeSession(ctx, m)
	}
	if toks := decodeTokens(m.codec, m.maybeSent); len(toks) > 0 {
		a.ev.emit(ctx, droppedEvent(m.c, toks, ErrMaybeSent), m.c, ErrMaybeSent)
	}
	if toks := decodeTokens(m.codec, m.unsent); len(toks) > 0 {
		if a.buffering() {
			a.buf.GiveBack(toks)
			for _, t := range toks {
				a.c.buffered.Add(int64(len(t)))
			}
		} else {
			a.ev.emit(ctx, droppedEvent(m.c, toks, ErrNotSent), m.c, ErrNotSent)
		}
	}
	if !a.isCurrent(m.c) {
		return // a connection the client had already let go
	}
	a.c.conn.Store(nil)
	a.conn, a.connPID, a.downPID = nil, nil, m.c.PID()
	if a.opts.Reconnect == nil {
		a.runner = nil
	}
	switch {
	case a.closing:
		a.maybeCloseDone(ctx)
	case a.opts.Reconnect == nil:
		a.c.closed() // the end: it answers a Close asked meanwhile too
		a.emitClose(ctx)
		a.maybeStop(ctx)
	case !a.c.beginCycleClose() && request(a.c.asked.Load()) == reqClose:
		// Close is on its way: it ends the cycle, and one close event comes
		// once the supervisor is gone.
		a.closeAsked(ctx, false)
	default:
		// The cycle goes on: this end's close event. A Close that lands
		// while it is delivered is answered by it.
		a.c.set(OFFLINE)
		a.emitClose(ctx)
		if a.c.endCycleClose() == reqClose {
			a.closeAsked(ctx, true)
		}
		a.maybeStop(ctx)
	}
}

// closeAsked takes the handle's pending Close and stops everything; the
// close event comes once it has. With answered, the close just delivered
// was the answer: the status stays OFFLINE and no other close comes.
func (a *clientActor) closeAsked(ctx actor.Context, answered bool) {
	if !answered {
		a.c.set(CLOSED)
	}
	a.c.take(reqClose)
	a.answered = answered
	a.beginClose(ctx)
}

// buffering reports whether tokens may wait in the reconnect buffer.
func (a *clientActor) buffering() bool {
	return a.c.bufLimit > 0 && a.c.cycling.Load() && !a.closing
}

func (a *clientActor) onBuffered(ctx actor.Context, tok []byte) {
	a.route(ctx, tok)
	a.c.routed.Add(-1)
	a.maybeStop(ctx)
}

// route sends a token Send posted, or keeps it, or reports it.
func (a *clientActor) route(ctx actor.Context, tok []byte) {
	n := int64(len(tok))
	switch {
	case a.c.conn.Load() != nil && a.conn.Send(tok):
		a.c.buffered.Add(-n)
	case !a.buffering():
		a.c.buffered.Add(-n)
		a.ev.emit(ctx, droppedEvent(nil, [][]byte{tok}, ErrClientClosed), nil, ErrClientClosed)
	default:
		a.buf.Push(tok)
	}
}

func (a *clientActor) dropBuffer(ctx actor.Context, reason error) {
	if s := a.session; s != nil && len(s.frames) > 0 {
		// What the session's server did not acknowledge goes first: it is
		// older than what waits in the buffer.
		a.c.buffered.Add(-int64(s.size()))
		a.session = newSessionState()
		a.ev.emit(ctx, droppedEvent(nil, decodeTokens(wire.Token2, s.frames), reason), nil, reason)
	}
	toks, n := a.buf.TakeAll()
	if len(toks) == 0 {
		return
	}
	a.c.buffered.Add(-n)
	a.ev.emit(ctx, droppedEvent(nil, toks, reason), nil, reason)
}

// giveSession hands the session to the connection that asked for it, once
// no other holds it. Its frames leave the buffer's count for that
// connection's queue.
func (a *clientActor) giveSession(ctx actor.Context) {
	if a.wantedBy == nil || a.session == nil {
		return
	}
	s := a.session
	a.session = nil
	a.c.buffered.Add(-int64(s.size()))
	ctx.Send(a.wantedBy.PID(), sessionGiven{s})
	a.wantedBy = nil
}

// takeSession takes back the session of a connection that ended: kept, with
// what its server did not acknowledge, for the next connection while the
// client connects again; else that is reported, maybe sent (written) then
// not sent. A session that ended cleanly, with nothing left, starts anew.
func (a *clientActor) takeSession(ctx actor.Context, m connDown) {
	s := m.session
	switch {
	case len(s.frames) == 0 && !m.resumable && !m.hadError:
		s = newSessionState()
	case !a.buffering() && len(s.frames) > 0:
		toks := decodeTokens(wire.Token2, s.frames)
		written := int(min(uint64(len(toks)), s.last+1-min(s.last+1, s.first)))
		if written > 0 {
			a.ev.emit(ctx, droppedEvent(m.c, toks[:written], ErrMaybeSent), m.c, ErrMaybeSent)
		}
		if written < len(toks) {
			a.ev.emit(ctx, droppedEvent(m.c, toks[written:], ErrNotSent), m.c, ErrNotSent)
		}
		s = newSessionState()
	}
	a.c.buffered.Add(int64(s.size()))
	a.session = s
	a.giveSession(ctx)
}

// onClose takes the handle's Close.
func (a *clientActor) onClose(ctx actor.Context) {
	running := a.runner != nil || a.waitConnect.Running()
	if !running || a.closing { // stale: the close it asked for has happened
		a.c.take(reqClose)
		return
	}
	a.c.set(CLOSED)
	a.c.take(reqClose)
	a.beginClose(ctx)
}

// beginClose stops everything that runs; the close event comes once it has.
func (a *clientActor) beginClose(ctx actor.Context) {
	if a.closing {
		return
	}
	a.closing = true
	a.c.conn.Store(nil) // Send is false from now on
	a.c.cycling.Store(false)
	a.dropBuffer(ctx, ErrClientClosed)
	a.waitConnect.Stop()
	switch {
	case a.connPID != nil: // dialing or connected: close it cleanly
		ctx.Send(a.connPID, closeRequest{})
	case a.runner != nil: // a supervisor waiting to connect again
		ctx.Send(a.runner, &supervisor.StopChild{})
	}
	a.maybeCloseDone(ctx)
}

// onRunnerGone: the connection actor or the supervisor has stopped.
func (a *clientActor) onRunnerGone(ctx actor.Context) {
	a.runner = nil
	a.connPID, a.conn = nil, nil
	if !a.closing {
		// The reconnection gave up, or the connection was closed from its
		// own handle: the cycle is over.
		a.c.cycling.Store(false)
		a.c.conn.Store(nil)
		a.dropBuffer(ctx, ErrClientClosed)
		if st := a.c.current(); st == ONLINE || st == CONNECTING {
			a.c.set(OFFLINE)
		}
	}
	a.maybeCloseDone(ctx)
	a.maybeStop(ctx)
}

// maybeCloseDone emits the close owed to Close once nothing runs.
func (a *clientActor) maybeCloseDone(ctx actor.Context) {
	if !a.closing || a.runner != nil || a.connPID != nil {
		return
	}
	a.closing = false
	// With answered, the close event was delivered already and the status
	// is OFFLINE (or CONNECTING: a Connect came meanwhile), unless a Close
	// came after that status was OFFLINE and before the cycle was over (the
	// handle saw OFFLINE while still cycling): that Close returned true and
	// set CLOSED, and its own close event below answers it.
	if a.answered {
		a.answered, a.hadError = false, false
		if a.c.current() != CLOSED {
			if d := a.connectAfter; d != nil {
				a.connectAfter = nil
				a.connect(ctx, *d)
			}
			a.maybeStop(ctx)
			return
		}
	}
	a.c.closed()
	a.emitClose(ctx)
	a.maybeStop(ctx)
}

func (a *clientActor) emitClose(ctx actor.Context) {
	had := a.hadError
	a.hadError = false
	a.ev.emit(ctx, closedEvent(nil, had), nil, nil)
}

// maybeStop ends the actor after Shutdown once nothing is left running.
func (a *clientActor) maybeStop(ctx actor.Context) {
	if !a.shutdown || a.stopping || a.closing || a.runner != nil || a.waitConnect.Running() || a.c.routed.Load() > 0 {
		return
	}
	if st := a.c.current(); st != OFFLINE {
		return
	}
	a.stopping = true
	ctx.Stop(ctx.Self())
}
