package actors

import (
	"fmt"
	"net"
	"strconv"

	"github.com/asynkron/protoactor-go/actor"
)

// ConnectionOptions configures NewConnection.
type ConnectionOptions struct {
	// Limits of the connection.
	Limits Limits
	Runtime
	// Handler, if set, receives every event as a message.
	Handler *actor.PID
	// Handshake runs the TLS handshake first (with Limits.HandshakeTimeout)
	// when the conn is a *tls.Conn that has not done it yet.
	Handshake bool

	// OnToken: a token from the peer.
	OnToken func(token []byte, c *Connection)
	// OnRemoteClose: the peer sent the remoteClose control frame.
	OnRemoteClose func(c *Connection)
	// OnError: the connection failed. Always followed by OnClose(true),
	// except for ErrHandlerPanic (a callback panicked; the connection goes on).
	OnError func(err error)
	// OnClose: the connection closed.
	OnClose func(hadError bool)
}

// NewConnection wraps any net.Conn (TLS, TCP, net.Pipe) in a connection
// actor and returns its handle: the original's Connection, which wraps any
// stream. The handle owns conn from now on.
func NewConnection(conn net.Conn, opts ConnectionOptions) (*Connection, error) {
	limits, err := opts.Limits.withDefaults()
	if err != nil {
		return nil, err
	}
	if conn == nil {
		return nil, fmt.Errorf("%w: nil conn", ErrInvalidOptions)
	}
	system, log, owned := opts.Runtime.resolve()
	root := system.Root
	h := newConnection(root, conn, limits.HighWaterMark)
	owner := root.Spawn(actor.PropsFromProducer(func() actor.Actor {
		return &standaloneActor{opts: opts, ev: events{handler: opts.Handler, log: log}, system: system, owned: owned}
	}))
	// The PID is set before the actor can hand the handle to anyone.
	name := "tokenserver-conn-" + strconv.FormatUint(h.id, 10)
	h.pid = actor.NewPID(system.Address(), name)
	if _, err := root.SpawnNamed(connProps(h, conn, opts.Handshake, limits, owner, log), name); err != nil {
		root.Stop(owner)
		return nil, fmt.Errorf("tokenserver: spawn connection actor: %w", err)
	}
	return h, nil
}

// standaloneActor delivers the events of one connection made by
// NewConnection, and stops after its close.
type standaloneActor struct {
	opts     ConnectionOptions
	ev       events
	system   *actor.ActorSystem
	owned    bool
	hadError bool
}

// Receive handles one message.
func (a *standaloneActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case connUp:
		a.ev.tell(ctx, connectedEvent(m.c))
	case connFrames:
		a.ev.deliver(ctx, m, &delivery{onToken: a.opts.OnToken, onRemoteClose: a.opts.OnRemoteClose,
			remoteClose: true, onError: withoutConn(a.opts.OnError)})
	case connFailed:
		a.hadError = true
		a.ev.call("OnError", func() {
			if a.opts.OnError != nil {
				a.opts.OnError(m.err)
			}
		})
		a.ev.tell(ctx, errorEvent(m.c, m.err))
	case connDown:
		a.ev.call("OnClose", func() {
			if a.opts.OnClose != nil {
				a.opts.OnClose(m.hadError)
			}
		})
		a.ev.tell(ctx, closedEvent(m.c, m.hadError))
		ctx.Stop(ctx.Self())
	case *actor.Stopped:
		if a.owned {
			a.system.Shutdown()
		}
	}
}
