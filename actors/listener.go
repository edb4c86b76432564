package actors

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tokenserver/tokenserver/supervisor"
	"github.com/tokenserver/tokenserver/tlsio"
)

// listenerActor owns a server's listening socket and its accept pump. It
// listens when it starts and reports to the server actor: listenerUp, or
// listenerFailed (then, under a supervisor with the server's ListenRetry
// policy, supervisor.Fail, so that it is started again after a delay). Each
// accepted socket goes straight to the server actor. Stopping it stops the
// pump and closes the socket, and waits for the pump, which ends at once:
// Accept returns when the socket is closed, and a backoff wait after a
// temporary accept error ends at Stop.
type listenerActor struct {
	server     *actor.PID
	addr       string // host:port, or the socket path when unix
	unix       bool
	keepAlive  time.Duration
	log        *slog.Logger
	supervised bool

	ln   net.Listener
	pump *tlsio.AcceptPump
}

// acceptStopped: the accept pump ended (err nil: the listener was closed).
type acceptStopped struct{ err error }

func listenerProps(server *actor.PID, addr string, unix bool, keepAlive time.Duration, log *slog.Logger,
	supervised bool, d actor.Dispatcher) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor {
		return &listenerActor{server: server, addr: addr, unix: unix, keepAlive: keepAlive, log: log, supervised: supervised}
	}, actor.WithDispatcher(d))
}

// Receive handles one message.
func (l *listenerActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		l.listen(ctx)
	case acceptStopped:
		if m.err != nil {
			ctx.Send(l.server, listenerFailed{fmt.Errorf("%w: accept: %w", ErrListen, m.err)})
		}
		ctx.Stop(ctx.Self())
	case *actor.Stopping:
		if l.ln != nil {
			l.pump.Stop()
			_ = l.ln.Close()
			<-l.pump.Done()
		}
	}
}

func (l *listenerActor) listen(ctx actor.Context) {
	listen := tlsio.Listen
	if l.unix {
		listen = tlsio.ListenUnix
	}
	ln, err := listen(context.Background(), l.addr, tlsio.ListenConfig{KeepAlive: l.keepAlive})
	if err != nil {
		err = fmt.Errorf("%w: %w", ErrListen, err)
		ctx.Send(l.server, listenerFailed{err})
		if l.supervised {
			ctx.Send(ctx.Parent(), &supervisor.Fail{Cause: err.Error()})
		}
		ctx.Stop(ctx.Self())
		return
	}
	l.ln = ln
	ctx.Send(l.server, listenerUp{ln.Addr()})
	root, self, server, log := ctx.ActorSystem().Root, ctx.Self(), l.server, l.log
	l.pump = tlsio.StartAcceptPump(ln, tlsio.AcceptConfig{
		OnTemporary: func(err error, delay time.Duration) {
			if delay == tlsio.MinAcceptBackoff { // the first of a burst
				log.Warn("accept failed; retrying with backoff", "addr", ln.Addr(), "err", err)
			}
			root.Send(server, acceptRetrying{err, delay})
		},
	},
		func(c net.Conn) { root.Send(server, accepted{c}) },
		func(err error) { root.Send(self, acceptStopped{err}) })
}
