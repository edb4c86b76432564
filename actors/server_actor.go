package actors

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/asynkron/protoactor-go/actor"
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
	admit     *admission
	closing   bool
	hadError  bool
	lastCause string // why listening last failed, for listen retry events
	// connectAfterGiveUp: a Connect came while a listen retry was pending;
	// if the policy gives up instead, it listens after this delay.
	connectAfterGiveUp *time.Duration

	waitListen    timer // Connect(delay)
	closeDeadline timer

	shutdown bool
	stopping bool
}

// listenerGone: the listener (or its supervisor) has terminated, and every
// message it sent before has been handled.
type listenerGone struct{ pid *actor.PID }

// Receive handles one message.
func (a *serverActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.startListening(ctx)
	case connectRequest:
		a.onConnect(ctx, m.delay)
	case closeRequest:
		// The status moves first, then the request is taken, so that
		// Status() never shows the status from before the Close.
		if st := a.s.current(); st == ONLINE || st == CONNECTING {
			a.beginClose(ctx)
		} // else: stale, the close it asked for has happened
		a.s.take(reqClose)
	case timerFired:
		switch {
		case a.waitListen.fired(m):
			a.startListening(ctx)
		case a.closeDeadline.fired(m):
			for c := range a.conns {
				ctx.Send(c.pid, forceClose{fmt.Errorf("%w (%v)", ErrForcedClose, a.limits.CloseTimeout)})
			}
		}

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
		// The supervisor stops itself now and sends nothing more: forget it
		// before the event, so that a Connect from OnGaveUp listens again.
		a.forgetListener()
		a.ev.emit(ctx, &ReconnectGaveUp{Attempts: m.Attempts, Cause: m.Cause}, nil, nil)
		if d := a.connectAfterGiveUp; d != nil && !a.closing {
			a.connectAfterGiveUp = nil
			a.listenAfter(ctx, *d)
		}
		a.maybeClosed(ctx)
		a.maybeStop(ctx)
	case *actor.Terminated:
		// Terminated overtakes ordinary messages: finish behind what the
		// listener sent before it ended.
		if a.listener != nil && m.Who.Equal(a.listener) {
			ctx.Send(ctx.Self(), listenerGone{m.Who})
		}
	case listenerGone:
		if a.listener != nil && m.pid.Equal(a.listener) {
			a.forgetListener()
			a.maybeClosed(ctx)
			a.maybeStop(ctx)
		}

	case slotRequest:
		a.admit.askSlot(m)
	case slotDone:
		a.admit.releaseSlot(ctx, m.c)
	case connUp:
		if err := a.revokedUp(m.c); err != nil { // reload.go: revoked during its handshake
			ctx.Send(m.c.pid, forceClose{err})
			return
		}
		if err := a.admit.admitLive(ctx, m.c); err != nil {
			ctx.Send(m.c.pid, forceClose{err})
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
		a.ev.emit(ctx, errorEvent(m.c, m.err), m.c, m.err)
	case connDrained:
		a.ev.drained(ctx, m.c)
	case connDown:
		a.s.stats.down(m.c, m.hadError)
		a.admit.gone(ctx, m.c, a.conns[m.c])
		delete(a.conns, m.c)
		a.publish()
		reportDropped(ctx, a.ev, m)
		a.ev.emit(ctx, closedEvent(m.c, m.hadError), m.c, nil)
		a.maybeClosed(ctx)
		a.maybeStop(ctx)

	case shutdownRequest:
		a.shutdown = true
		if a.listener != nil || a.waitListen.running() {
			a.beginClose(ctx) // a listen retry was pending, say
		}
		a.maybeStop(ctx)
	case *actor.Stopped:
		a.waitListen.stop()
		a.closeDeadline.stop()
		a.s.stopped()
	}
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
	a.waitListen.start(ctx, delay)
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
	if a.closing { // the close emits close
		a.maybeClosed(ctx)
		return
	}
	a.s.closed()
	a.emitClose(ctx)
	a.maybeStop(ctx)
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
	root := ctx.ActorSystem().Root
	h := newConnection(root, a.limits)
	h.remote, h.local = raw.RemoteAddr(), raw.LocalAddr()
	if err := a.admit.admitPending(h, h.remote); err != nil {
		_ = raw.Close()
		h.shared.gate.close()
		a.ev.emit(ctx, errorEvent(h, err), h, err)
		a.ev.emit(ctx, closedEvent(h, true), h, nil)
		return
	}
	cfg := connConfig{limits: a.limits, owner: ctx.Self(), log: a.log, handshake: true,
		handlerCredit: a.opts.Handler != nil}
	cfg.stats = a.s.stats
	self := ctx.Self()
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
	a.waitListen.stop()
	if a.closing {
		return
	}
	a.closing = true
	a.s.set(CLOSED)
	a.stopListener(ctx)
	for c, live := range a.conns {
		if live { // those still in their handshake get it when they are up
			c.RemoteClose()
		}
	}
	a.closeDeadline.start(ctx, a.limits.CloseTimeout)
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
	a.closeDeadline.stop()
	a.s.addr.Store(nil)
	a.s.closed()
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
