package actors

import (
	"context"
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tokenserver/tokenserver/supervisor"
	"github.com/tokenserver/tokenserver/tlsio"
)

// Server is the handle of a token server: the original's TokenServer. It
// listens from construction on; its events reach the callbacks and the handler
// PID of its options. Its methods are safe for concurrent use and never block
// on the network.
type Server struct {
	lifecycle
	addr  atomic.Pointer[net.TCPAddr]
	conns atomic.Pointer[[]*Connection]
}

// NewServer checks the options, builds the TLS configuration and starts the
// server actor, which starts listening at once (status CONNECTING). A bad
// option is an error here; a port in use is an error event.
func NewServer(opts ServerOptions) (*Server, error) {
	limits, err := opts.Limits.withDefaults()
	if err != nil {
		return nil, err
	}
	if opts.Port < 0 || opts.Port > 65535 {
		return nil, fmt.Errorf("%w: port %d out of range", ErrInvalidOptions, opts.Port)
	}
	if opts.MaxConnections == 0 {
		opts.MaxConnections = DefaultMaxConnections
	}
	if opts.MaxConnections < 0 {
		return nil, fmt.Errorf("%w: MaxConnections %d is negative", ErrInvalidOptions, opts.MaxConnections)
	}
	if opts.ListenRetry != nil {
		if err := opts.ListenRetry.Validate(); err != nil {
			return nil, fmt.Errorf("%w: listen retry: %w", ErrInvalidOptions, err)
		}
	}
	cfg, err := tlsio.ServerConfig(opts.TLS)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidOptions, err)
	}
	system, log, owned := opts.Runtime.resolve()
	s := &Server{}
	s.init(system, owned)
	s.conns.Store(&[]*Connection{})
	a := &serverActor{
		s: s, opts: opts, limits: limits, tls: cfg,
		addr:  net.JoinHostPort(opts.Host, strconv.Itoa(opts.Port)),
		ev:    events{handler: opts.Handler, log: log},
		conns: map[*Connection]bool{},
		deliver: delivery{onTokens: opts.OnTokens, onToken: opts.OnToken,
			onError: opts.OnConnectionError},
	}
	if opts.ListenRetry != nil {
		a.retry = supervisor.NewBackoff(*opts.ListenRetry, rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())))
	}
	s.pid = system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return a }))
	return s, nil
}

// Addr is the address the server listens on (with the port picked when Port
// was 0), or nil while it does not listen.
func (s *Server) Addr() net.Addr {
	if a := s.addr.Load(); a != nil {
		return a
	}
	return nil
}

// Connections returns the live connections. A closed connection leaves the
// list before its close event is delivered.
func (s *Server) Connections() []*Connection {
	return append([]*Connection(nil), *s.conns.Load()...)
}

// Close stops accepting, sends remoteClose to every client, waits for them
// to close, closes by force those still open after the close timeout, then
// emits close. It returns true if the server was listening or about to, false
// if it was already closed or closing.
func (s *Server) Close() bool {
	for {
		st := s.status.load()
		if st != ONLINE && st != CONNECTING {
			return false
		}
		if s.status.cas(st, CLOSED) {
			s.system.Root.Send(s.pid, closeRequest{})
			return true
		}
	}
}

// Connect listens again after delay, on the port it had before (also when
// Port was 0 and the system picked it). It returns false if the server is
// listening, connecting or closing, or was shut down.
func (s *Server) Connect(delay time.Duration) bool {
	if s.gone.Load() || !s.status.cas(OFFLINE, CONNECTING) {
		return false
	}
	s.system.Root.Send(s.pid, connectRequest{delay})
	return true
}

// Shutdown closes the server if it is open, waits until its close event has
// been delivered and every actor and goroutine it started has stopped, then
// ends the server for good. It returns ctx's error if ctx ends first.
func (s *Server) Shutdown(ctx context.Context) error { return s.shutdown(ctx, s.Close) }

// Messages of the server and client actors.
type (
	connectRequest  struct{ delay time.Duration }
	listenNow       struct{ gen int }
	accepted        struct{ conn net.Conn }
	acceptEnded     struct{ err error }
	closeDeadline   struct{ gen int }
	shutdownRequest struct{}
)

// serverActor owns the listener, the accept goroutine and the connections.
type serverActor struct {
	s       *Server
	opts    ServerOptions
	limits  Limits
	tls     *tls.Config
	addr    string
	ev      events
	deliver delivery

	ln         net.Listener
	accepting  bool // the accept goroutine runs
	conns      map[*Connection]bool
	closing    bool
	hadError   bool
	gen        int // invalidates timers of an earlier cycle
	cancel     func()
	retry      *supervisor.Backoff // ListenRetry, or nil
	shutdown   bool
	stoppedYet bool
}

// Receive handles one message.
func (a *serverActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.listen(ctx)
	case connectRequest:
		a.hadError = false
		a.gen++
		if m.delay <= 0 {
			a.listen(ctx)
		} else {
			a.after(ctx, m.delay, listenNow{a.gen})
		}
	case listenNow:
		if m.gen == a.gen && a.s.status.load() == CONNECTING {
			a.listen(ctx)
		}
	case accepted:
		a.onAccepted(ctx, m.conn)
	case acceptEnded:
		a.accepting = false
		a.ln = nil
		if !a.closing {
			a.ev.log.Warn("accept failed", "err", m.err)
			a.beginClose(ctx)
		}
		a.maybeClosed(ctx)
	case closeRequest:
		if a.s.status.load() == CLOSED { // else stale: that close was emitted
			a.beginClose(ctx)
		}
	case closeDeadline:
		if m.gen == a.gen && a.closing {
			for c := range a.conns {
				ctx.Send(c.pid, forceClose{fmt.Errorf("%w (%v)", ErrForcedClose, a.limits.CloseTimeout)})
			}
		}
	case connUp:
		a.conns[m.c] = true
		a.publish()
		_ = a.ev.call("OnConnection", func() {
			if a.opts.OnConnection != nil {
				a.opts.OnConnection(m.c)
			}
		})
		a.ev.tell(ctx, connectedEvent(m.c))
		if a.closing {
			m.c.RemoteClose()
		}
	case connFrames:
		a.ev.deliver(ctx, m, &a.deliver)
	case connFailed:
		a.ev.call("OnConnectionError", func() {
			if a.opts.OnConnectionError != nil {
				a.opts.OnConnectionError(m.c, m.err)
			}
		})
		a.ev.tell(ctx, errorEvent(m.c, m.err))
	case connDown:
		delete(a.conns, m.c)
		a.publish()
		a.ev.call("OnConnectionClose", func() {
			if a.opts.OnConnectionClose != nil {
				a.opts.OnConnectionClose(m.c, m.hadError)
			}
		})
		a.ev.tell(ctx, closedEvent(m.c, m.hadError))
		a.maybeClosed(ctx)
	case shutdownRequest:
		a.shutdown = true
		a.maybeStop(ctx)
	case *actor.Stopped:
		a.s.stopped()
	}
}

func (a *serverActor) after(ctx actor.Context, d time.Duration, msg any) {
	root, self := ctx.ActorSystem().Root, ctx.Self()
	t := time.AfterFunc(d, func() { root.Send(self, msg) })
	prev := a.cancel
	a.cancel = func() {
		t.Stop()
		if prev != nil {
			prev()
		}
	}
}

func (a *serverActor) stopTimers() {
	if a.cancel != nil {
		a.cancel()
		a.cancel = nil
	}
}

func (a *serverActor) listen(ctx actor.Context) {
	if a.s.status.load() != CONNECTING {
		return
	}
	ln, err := tlsio.Listen(context.Background(), a.addr, tlsio.ListenConfig{KeepAlive: a.limits.KeepAlive})
	if err != nil {
		err = fmt.Errorf("%w: %w", ErrListen, err)
		a.hadError = true
		a.emitError(ctx, err)
		closed := a.s.status.load() == CLOSED // Close was called in OnError
		a.s.status.store(OFFLINE)
		a.emitClose(ctx)
		if !closed {
			a.retryListen(ctx, err)
		}
		a.maybeStop(ctx)
		return
	}
	if a.retry != nil {
		a.retry.Up(time.Now())
	}
	a.ln = ln
	a.closing = false
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok {
		a.s.addr.Store(tcp)
		// Listening again (Connect) uses the same port, also when Port was 0
		// and the system picked it: clients that reconnect find it there.
		a.addr = net.JoinHostPort(a.opts.Host, strconv.Itoa(tcp.Port))
	}
	a.s.status.store(ONLINE)
	a.accepting = true
	root, self := ctx.ActorSystem().Root, ctx.Self()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				root.Send(self, acceptEnded{err})
				return
			}
			root.Send(self, accepted{c})
		}
	}()
	a.ev.call("OnConnect", func() {
		if a.opts.OnConnect != nil {
			a.opts.OnConnect()
		}
	})
	a.ev.tell(ctx, &Listening{Addr: ln.Addr().String()})
}

// retryListen schedules the next listen under the ListenRetry policy.
func (a *serverActor) retryListen(ctx actor.Context, cause error) {
	if a.retry == nil || a.shutdown {
		return
	}
	attempt, delay, ok := a.retry.Next(time.Now())
	if !ok {
		a.retry.Reset()
		a.ev.call("OnGaveUp", func() {
			if a.opts.OnGaveUp != nil {
				a.opts.OnGaveUp(attempt, cause.Error())
			}
		})
		a.ev.tell(ctx, &ReconnectGaveUp{Attempts: attempt, Cause: cause.Error()})
		return
	}
	if !a.s.status.cas(OFFLINE, CONNECTING) {
		return
	}
	a.hadError = false
	a.gen++
	a.after(ctx, delay, listenNow{a.gen})
	a.ev.call("OnListenRetry", func() {
		if a.opts.OnListenRetry != nil {
			a.opts.OnListenRetry(attempt, delay, cause.Error())
		}
	})
	a.ev.tell(ctx, &Reconnecting{Attempt: attempt, Delay: delay, Cause: cause.Error()})
}

func (a *serverActor) onAccepted(ctx actor.Context, raw net.Conn) {
	if a.closing {
		_ = raw.Close()
		return
	}
	h := newConnection(ctx.ActorSystem().Root, raw, a.limits.HighWaterMark)
	if len(a.conns) >= a.opts.MaxConnections {
		_ = raw.Close()
		h.shared.dead.Store(true)
		err := fmt.Errorf("%w (%d)", ErrTooManyConnections, a.opts.MaxConnections)
		a.ev.call("OnConnectionError", func() {
			if a.opts.OnConnectionError != nil {
				a.opts.OnConnectionError(h, err)
			}
		})
		a.ev.tell(ctx, errorEvent(h, err))
		a.ev.call("OnConnectionClose", func() {
			if a.opts.OnConnectionClose != nil {
				a.opts.OnConnectionClose(h, true)
			}
		})
		a.ev.tell(ctx, closedEvent(h, true))
		return
	}
	tc := tls.Server(raw, a.tls)
	a.conns[h] = false // counted, not yet live
	h.pid = ctx.Spawn(connProps(h, tc, true, a.limits, ctx.Self(), a.ev.log))
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

func (a *serverActor) beginClose(ctx actor.Context) {
	a.stopTimers()
	if a.closing {
		return
	}
	a.closing = true
	a.s.status.store(CLOSED)
	if a.ln != nil {
		_ = a.ln.Close()
	}
	for c, live := range a.conns {
		if live { // those still in their handshake get it when they are up
			c.RemoteClose()
		}
	}
	a.gen++
	a.after(ctx, a.limits.CloseTimeout, closeDeadline{a.gen})
	a.maybeClosed(ctx)
}

// maybeClosed emits close once the listener, its goroutine and every
// connection are gone.
func (a *serverActor) maybeClosed(ctx actor.Context) {
	if !a.closing || a.accepting || len(a.conns) > 0 {
		return
	}
	a.closing = false
	a.stopTimers()
	a.s.addr.Store(nil)
	a.s.status.store(OFFLINE)
	a.emitClose(ctx)
	a.maybeStop(ctx)
}

func (a *serverActor) emitError(ctx actor.Context, err error) {
	a.ev.call("OnError", func() {
		if a.opts.OnError != nil {
			a.opts.OnError(err)
		}
	})
	a.ev.tell(ctx, errorEvent(nil, err))
}

func (a *serverActor) emitClose(ctx actor.Context) {
	had := a.hadError
	a.ev.call("OnClose", func() {
		if a.opts.OnClose != nil {
			a.opts.OnClose(had)
		}
	})
	a.ev.tell(ctx, closedEvent(nil, had))
}

// maybeStop ends the actor after Shutdown once nothing is left running.
func (a *serverActor) maybeStop(ctx actor.Context) {
	if !a.shutdown || a.stoppedYet || a.closing || a.accepting || len(a.conns) > 0 {
		return
	}
	if st := a.s.status.load(); st == ONLINE || st == CONNECTING {
		return
	}
	a.stoppedYet = true
	a.stopTimers()
	ctx.Stop(ctx.Self())
}
