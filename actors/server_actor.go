package actors

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tokenserver/tokenserver/actors/internal/timer"
	"github.com/tokenserver/tokenserver/supervisor"
)

// serverActor owns the server's status, its listener (a listener actor, under
// a supervisor when ListenRetry is set) and its connections (connection
// actors, its children). It makes every status transition (see status.go)
// and delivers every event.
type serverActor struct {
	s      *Server
	opts   ServerOptions
	limits Limits
	tls    *tls.Config
	log    *slog.Logger
	addr   string
	ev     *emitter

	listener  *actor.PID           // the listener actor or its supervisor; nil if none
	listening bool                 // listenerUp came from the current listener
	conns     map[*Connection]bool // live (true) or in its handshake
	sessions  sessionsOf           // token/2 sessions (server_sessions.go)
	budget    *serverBudget        // the memory budget (server_budget.go); nil: none
	admit     *serverAdmission
	closing   bool
	answered  bool // the Close in progress was answered by a close delivered already
	hadError  bool
	lastCause string // why listening last failed, for listen retry events
	// connectAfterGiveUp: a Connect came while a listen retry was pending;
	// if the policy gives up instead, it listens after this delay.
	connectAfterGiveUp *time.Duration

	waitListen    timer.Timer // Connect(delay)
	closeDeadline timer.Timer

	shutdown bool
	stopping bool
}

// Receive handles one message.
func (a *serverActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.startListening(ctx)
	case connectRequest:
		a.onConnect(ctx, m.delay)
	case closeRequest:
		a.onClose(ctx)
	case timer.Fired:
		a.onTimer(ctx, m)

	case listenerUp:
		a.onListening(ctx, m.addr)
	case listenerFailed:
		a.onListenerFailed(ctx, m.err)
	case acceptRetrying:
		// The listener logs it; it keeps accepting.
		a.s.stats.acceptRetries.Add(1)
	case accepted:
		a.onAccepted(ctx, m.conn)
	case *supervisor.Restarting:
		a.onListenRetry(ctx, m)
	case *supervisor.GaveUp:
		a.onListenGaveUp(ctx, m)
	case *actor.Terminated:
		// Terminated overtakes ordinary messages: finish behind what the
		// listener sent before it ended.
		if a.listener != nil && m.Who.Equal(a.listener) {
			ctx.Send(ctx.Self(), listenerGone{m.Who})
		}
	case listenerGone:
		if a.listener != nil && m.pid.Equal(a.listener) {
			a.onListenerGone(ctx)
		}

	case slotRequest:
		a.onHello(ctx, m)
	case slotDone:
		a.onFlightDone(ctx, m.c)
	case connUp:
		if err := a.revokedUp(m.c); err != nil { // reload.go: revoked during its handshake
			ctx.Send(m.c.PID(), forceClose{err})
			return
		}
		if err := a.admitLive(ctx, m.c); err != nil {
			ctx.Send(m.c.PID(), forceClose{err})
			return
		}
		a.conns[m.c] = true
		a.publish()
		a.ev.emit(ctx, connectedEvent(m.c), m.c, nil)
		if a.closing {
			m.c.RemoteClose()
		}
	case connFrames:
		a.ev.deliverChunk(ctx, m)
	case tlsReloaded:
		a.closeRevoked(ctx)
	case connFailed:
		if !a.evictedQuietly(m.c) {
			a.ev.emit(ctx, errorEvent(m.c, m.err), m.c, m.err)
		}
	case connDrained:
		a.ev.drained(ctx, m.c)
	case connDown:
		a.onConnDown(ctx, m)

	case sessionHello:
		a.onSessionHello(ctx, m)
	case connSuspended:
		a.onConnSuspended(ctx, m.c)
	case connResumed:
		a.onConnResumed(ctx, m.c)
	case sessionWaitOver:
		a.onSessionWaitOver(ctx, m)
	case memoryAsk:
		if a.budget != nil {
			a.budget.ask(ctx, m)
		}
	case memoryBack:
		if a.budget != nil {
			a.budget.back(ctx, m.c, m.bytes)
		}

	case shutdownRequest:
		a.onShutdown(ctx)
	case *actor.Stopped:
		a.waitListen.Stop()
		a.closeDeadline.Stop()
		a.stopAdmission()
		a.ev.stopWatching()
		a.s.stopped()
	}
}

// onConnDown: a connection ended. A new one whose socket went to its
// token/2 session was never open and leaves without a word.
func (a *serverActor) onConnDown(ctx actor.Context, m connDown) {
	live := a.conns[m.c]
	if !live && !m.handedOver {
		// One that handed its socket over is the session's business now:
		// its end may come before the session's connResumed, and must not
		// mark the resuming session as waiting again.
		a.greetingGone(ctx, m.c)
	}
	a.sessionDown(ctx, m.c)
	if a.budget != nil {
		a.budget.gone(ctx, m.c)
	}
	if m.handedOver {
		a.admissionGone(ctx, m.c, false)
		delete(a.conns, m.c)
		a.maybeClosed(ctx)
		a.maybeStop(ctx)
		return
	}
	a.s.stats.down(m.c, m.hadError)
	quiet := a.admissionGone(ctx, m.c, live)
	delete(a.conns, m.c)
	a.publish()
	reportDropped(ctx, a.ev, m)
	if !quiet {
		a.ev.emit(ctx, closedEvent(m.c, m.hadError), m.c, nil)
	}
	a.maybeClosed(ctx)
	a.maybeStop(ctx)
}

// onClose takes the handle's Close. The status moves first, then the
// request is taken, so that Status() never shows the status from before
// the Close.
func (a *serverActor) onClose(ctx actor.Context) {
	if st := a.s.current(); st == ONLINE || st == CONNECTING {
		a.beginClose(ctx)
	} // else: stale, the close it asked for has happened
	a.s.take(reqClose)
}

func (a *serverActor) onTimer(ctx actor.Context, m timer.Fired) {
	switch {
	case a.waitListen.Accept(m):
		a.startListening(ctx)
	case a.closeDeadline.Accept(m):
		for c := range a.conns {
			ctx.Send(c.PID(), forceClose{fmt.Errorf("%w (%v)", ErrForcedClose, a.limits.CloseTimeout)})
		}
	case a.admissionTimer(m):
	}
}

// onListenGaveUp: the listen retry policy gave up. The supervisor stops
// itself now and sends nothing more: it is forgotten before the event, so
// that a Connect from OnGaveUp listens again.
func (a *serverActor) onListenGaveUp(ctx actor.Context, m *supervisor.GaveUp) {
	a.forgetListener()
	a.ev.emit(ctx, &ReconnectGaveUp{Attempts: m.Attempts, Cause: m.Cause}, nil, nil)
	if d := a.connectAfterGiveUp; d != nil && !a.closing {
		a.connectAfterGiveUp = nil
		a.listenAfter(ctx, *d)
	}
	a.maybeClosed(ctx)
	a.maybeStop(ctx)
}

// onListenerGone: the listener (or its supervisor) has ended, after every
// message it sent.
func (a *serverActor) onListenerGone(ctx actor.Context) {
	a.forgetListener()
	a.maybeClosed(ctx)
	a.maybeStop(ctx)
}

// onShutdown takes Shutdown: the actor stops once nothing runs.
func (a *serverActor) onShutdown(ctx actor.Context) {
	a.shutdown = true
	if a.listener != nil || a.waitListen.Running() {
		a.beginClose(ctx) // a listen retry was pending, say
	}
	a.maybeStop(ctx)
}

func (a *serverActor) onConnect(ctx actor.Context, delay time.Duration) {
	defer a.s.take(reqConnect) // after the status moved (see closeRequest)
	if a.s.current() != OFFLINE || a.closing {
		return
	}
	if a.listener != nil {
		// A listen retry is on its way: it serves this Connect; if the
		// policy gives up first, the Connect listens then.
		a.connectAfterGiveUp = &delay
		a.s.set(CONNECTING)
		a.hadError = false
		return
	}
	a.s.set(CONNECTING)
	a.hadError = false
	a.listenAfter(ctx, delay)
}

// listenAfter listens now or after delay.
func (a *serverActor) listenAfter(ctx actor.Context, delay time.Duration) {
	if delay <= 0 {
		a.startListening(ctx)
		return
	}
	a.waitListen.Start(ctx, delay)
}

// startListening spawns the listener, under a supervisor with ListenRetry.
func (a *serverActor) startListening(ctx actor.Context) {
	if a.s.current() != CONNECTING || a.listener != nil {
		return
	}
	if a.opts.ListenRetry == nil {
		a.listener = ctx.Spawn(listenerProps(ctx.Self(), a.addr, a.opts.Path != "", a.limits.KeepAlive, a.log, false, a.s.pool))
		return
	}
	props, err := supervisor.NewProps(listenerProps(ctx.Self(), a.addr, a.opts.Path != "", a.limits.KeepAlive, a.log, true, a.s.pool),
		supervisor.Config{Policy: *a.opts.ListenRetry, Listener: ctx.Self()})
	if err != nil { // validated in NewServer
		panic(err)
	}
	a.listener = ctx.Spawn(props.Configure(actor.WithDispatcher(a.s.pool)))
}

func (a *serverActor) onListening(ctx actor.Context, addr net.Addr) {
	a.listening = true
	a.s.addr.Store(&addr)
	if tcp, ok := addr.(*net.TCPAddr); ok {
		// Listening again (Connect) uses the same port, also when Port was 0
		// and the system picked it: clients that reconnect find it there.
		a.addr = net.JoinHostPort(a.opts.Host, strconv.Itoa(tcp.Port))
	}
	if a.closing { // Close came first; the listener is being stopped
		return
	}
	a.s.set(ONLINE)
	a.ev.emit(ctx, &Listening{Addr: addr.String()}, nil, nil)
}

// onListenerFailed: listening failed (error, then close), or accepting
// failed for good (error, then the server closes).
func (a *serverActor) onListenerFailed(ctx actor.Context, err error) {
	a.lastCause = err.Error()
	a.hadError = true
	a.ev.emit(ctx, errorEvent(nil, err), nil, err)
	if a.listening {
		a.beginClose(ctx)
		return
	}
	if a.opts.ListenRetry == nil {
		// The listener could not listen and stops itself; it holds no
		// socket and sends nothing more. Forget it now: a Connect from the
		// close callback (or right after it) reaches this actor before the
		// listener's end does, and must find no listener in its way.
		a.forgetListener()
	}
	switch {
	case a.closing: // the close emits close
		a.maybeClosed(ctx)
	case a.opts.ListenRetry == nil:
		a.s.closed() // the end: it answers a Close asked meanwhile too
		a.emitClose(ctx)
		a.maybeStop(ctx)
	case !a.s.beginCycleClose() && request(a.s.asked.Load()) == reqClose:
		// A Close is pending (asked while the error was delivered, say):
		// its request ends the retries, and one close comes then.
	default:
		// The listen retry goes on: this failure's close event. A Close
		// that lands while it is delivered is answered by it.
		a.s.set(OFFLINE)
		a.emitClose(ctx)
		if a.s.endCycleClose() == reqClose {
			a.answered = true
			a.beginClose(ctx)
			a.s.take(reqClose)
		}
		a.maybeStop(ctx)
	}
}

// forgetListener: the listener (or its supervisor) is gone, or is ending and
// will send nothing more; its late listenerGone no longer matches.
func (a *serverActor) forgetListener() {
	a.listener, a.listening = nil, false
}

// onListenRetry: the listen retry policy starts the listener again after a
// delay.
func (a *serverActor) onListenRetry(ctx actor.Context, m *supervisor.Restarting) {
	if a.closing || (a.s.current() != OFFLINE && a.connectAfterGiveUp == nil) {
		return
	}
	a.connectAfterGiveUp = nil
	a.s.set(CONNECTING)
	a.hadError = false
	a.ev.emit(ctx, &Reconnecting{Attempt: m.Attempt, Delay: m.Delay, Cause: a.lastCause}, nil, nil)
}

func (a *serverActor) onAccepted(ctx actor.Context, raw net.Conn) {
	a.s.stats.accepted.Add(1)
	if a.closing || !a.listening {
		_ = raw.Close()
		return
	}
	h := newConnection(ctx.ActorSystem().Root, a.limits)
	h.setAddrs(raw)
	a.admitSocket(ctx, h, raw) // startHandshake now, or when its turn comes
}

// startHandshake spawns the connection actor of h over raw, with timeout
// left for its handshake.
func (a *serverActor) startHandshake(ctx actor.Context, h *Connection, raw net.Conn, timeout time.Duration) {
	cfg := connConfig{limits: a.limits, owner: ctx.Self(), log: a.log, handshake: true,
		handlerCredit: a.opts.Handler != nil, lend: a.opts.LendTokens,
		sessions: &sessionConfig{server: true, timeout: a.opts.SessionTimeout}, ownerPool: a.s.pool}
	if a.budget != nil {
		cfg.budget = &budgetConfig{wait: a.opts.MemoryWait}
	}
	cfg.limits.HandshakeTimeout = timeout
	cfg.stats = a.s.stats
	root, self := ctx.ActorSystem().Root, ctx.Self()
	sock := &flightConn{Conn: raw, onFlight: func() { root.Send(self, slotDone{h}) }}
	a.conns[h] = false // in its handshake
	h.pid = ctx.Spawn(connProps(h, tls.Server(sock, handshakeTLS(a.tls, root, self, h)), cfg))
}

// publish stores the list of live connections for Server.Connections.
func (a *serverActor) publish() {
	list := make([]*Connection, 0, len(a.conns))
	for c, live := range a.conns {
		if live {
			list = append(list, c)
		}
	}
	a.s.conns.Store(&list)
}

// beginClose stops listening, asks every live client to close (remoteClose),
// and starts the close deadline.
func (a *serverActor) beginClose(ctx actor.Context) {
	a.waitListen.Stop()
	if a.closing {
		return
	}
	a.closing = true
	a.s.set(CLOSED)
	a.stopListener(ctx)
	a.endSuspendedSessions(ctx)
	a.dropWaiting()
	for c, live := range a.conns {
		if live { // those still in their handshake get it when they are up
			c.RemoteClose()
		}
	}
	a.closeDeadline.Start(ctx, a.limits.CloseTimeout)
	a.maybeClosed(ctx)
}

func (a *serverActor) stopListener(ctx actor.Context) {
	switch {
	case a.listener == nil:
	case a.opts.ListenRetry != nil:
		ctx.Send(a.listener, &supervisor.StopChild{})
	default:
		ctx.Stop(a.listener)
	}
}

// maybeClosed emits close once the listener and every connection are gone.
func (a *serverActor) maybeClosed(ctx actor.Context) {
	if !a.closing || a.listener != nil || len(a.conns) > 0 {
		return
	}
	a.closing = false
	a.closeDeadline.Stop()
	a.s.addr.Store(nil)
	a.s.closed()
	if a.answered { // the close event was delivered already
		a.answered, a.hadError = false, false
		return
	}
	a.emitClose(ctx)
}

func (a *serverActor) emitClose(ctx actor.Context) {
	had := a.hadError
	a.hadError = false
	a.ev.emit(ctx, closedEvent(nil, had), nil, nil)
}

// maybeStop ends the actor after Shutdown once nothing is left running.
func (a *serverActor) maybeStop(ctx actor.Context) {
	if !a.shutdown || a.stopping || a.closing || a.listener != nil || len(a.conns) > 0 {
		return
	}
	if st := a.s.current(); st == ONLINE || st == CONNECTING {
		return
	}
	a.stopping = true
	ctx.Stop(ctx.Self())
}
