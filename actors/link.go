package actors

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tokenserver/tokenserver/supervisor"
	"github.com/tokenserver/tokenserver/tlsio"
	"github.com/tokenserver/tokenserver/wire"
)

// linkActor is one connection attempt of a client and, when it succeeds, the
// owner of that connection: it dials, spawns the connection actor and relays
// its events to the client actor. Without reconnection the client spawns one
// link per Connect; with reconnection a supervisor actor spawns it and starts
// a new one, after the backoff delay, each time a link reports a failure.
type linkActor struct {
	client     *actor.PID
	addr       string
	tls        *tls.Config
	limits     Limits
	log        *slog.Logger
	supervised bool

	cancelDial context.CancelFunc
	conn       *Connection
	userClose  bool   // the client asked this link to close
	cause      string // why the connection ended, if not asked to
	ended      bool   // linkEnded was sent
}

// Messages between the link and the client actor.
type (
	// linkStarted: a link began; linkEnded follows, always.
	linkStarted struct{}
	// linkDialFailed: the attempt failed; the link stops after sending it.
	linkDialFailed struct{ err error }
	// linkEnded: the link has nothing left running and stops.
	linkEnded struct{}
)

func linkProps(client *actor.PID, addr string, cfg *tls.Config, limits Limits, log *slog.Logger, supervised bool) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor {
		return &linkActor{client: client, addr: addr, tls: cfg, limits: limits, log: log, supervised: supervised}
	})
}

// Receive handles one message.
func (l *linkActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		ctx.Send(l.client, linkStarted{}) // before anything else this link sends
		l.dial(ctx)
	case dialResult:
		l.cancelDial()
		l.cancelDial = nil
		switch {
		case l.userClose:
			if m.conn != nil {
				_ = m.conn.Close()
			}
			l.end(ctx, "")
		case m.err != nil:
			err := fmt.Errorf("%w: %w", ErrDial, m.err)
			ctx.Send(l.client, linkDialFailed{err})
			l.end(ctx, err.Error())
		default:
			l.conn = newConnection(ctx.ActorSystem().Root, m.conn, l.limits.HighWaterMark)
			l.conn.pid = ctx.Spawn(connProps(l.conn, m.conn, false, l.limits, ctx.Self(), l.log))
		}
	case connFrames:
		ctx.Send(l.client, m)
		if l.supervised {
			for _, f := range m.frames {
				if f.Kind == wire.KindRemoteClose && l.cause == "" && !l.userClose {
					// The server is going away: close cleanly, then let the
					// supervisor connect again after its delay.
					l.cause = "remote close"
					m.c.Close()
				}
			}
		}
	case connFailed:
		if l.cause == "" {
			l.cause = m.err.Error()
		}
		ctx.Send(l.client, m)
	case connUp, connUnsent:
		ctx.Send(l.client, m)
	case connDown:
		ctx.Send(l.client, m)
		l.conn = nil
		cause := l.cause
		if cause == "" && !l.userClose {
			cause = "connection closed by the server"
		}
		l.end(ctx, cause)
	case closeRequest:
		l.userClose = true
		switch {
		case l.cancelDial != nil:
			l.cancelDial() // the dial result ends the link
		case l.conn != nil:
			l.conn.Close() // connDown ends the link
		}
	case *actor.Stopping:
		// Stopped from outside (the supervisor stopping): the client still
		// learns that this link is gone.
		if l.cancelDial != nil {
			l.cancelDial()
		}
		if !l.ended {
			l.ended = true
			ctx.Send(l.client, linkEnded{})
		}
	}
}

func (l *linkActor) dial(ctx actor.Context) {
	dctx, cancel := context.WithCancel(context.Background())
	l.cancelDial = cancel
	root, self := ctx.ActorSystem().Root, ctx.Self()
	addr, cfg := l.addr, l.tls
	dc := tlsio.DialConfig{HandshakeTimeout: l.limits.HandshakeTimeout, KeepAlive: l.limits.KeepAlive}
	go func() {
		conn, err := tlsio.Dial(dctx, addr, cfg, dc)
		root.Send(self, dialResult{conn, err})
	}()
}

// end stops the link. A non-empty cause with supervision tells the
// supervisor to connect again; an empty one is a clean stop.
func (l *linkActor) end(ctx actor.Context, cause string) {
	if l.supervised && cause != "" && !l.userClose {
		ctx.Send(ctx.Parent(), &supervisor.Fail{Cause: cause})
	}
	l.ended = true
	ctx.Send(l.client, linkEnded{})
	ctx.Stop(ctx.Self())
}
