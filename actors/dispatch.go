package actors

import (
	"fmt"
	"log/slog"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tokenserver/tokenserver/wire"
)

// events delivers the events of one server, client or standalone connection
// to the user: to the callbacks and to the handler PID. It runs inside the
// owning actor, so callbacks never run concurrently with each other.
type events struct {
	handler *actor.PID
	log     *slog.Logger
}

// call runs a user callback, turning a panic into an error. It reports
// whether the callback returned normally.
func (e *events) call(what string, f func()) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("%w: %s: %v", ErrHandlerPanic, what, v)
			e.log.Error("handler panicked", "callback", what, "value", v)
		}
	}()
	f()
	return nil
}

// tell sends an event message to the handler PID, if there is one.
func (e *events) tell(ctx actor.Context, msg any) {
	if e.handler != nil {
		ctx.Send(e.handler, msg)
	}
}

func errorEvent(c *Connection, err error) *ErrorOccurred {
	ev := &ErrorOccurred{Code: ErrorCode(err), Message: err.Error()}
	if c != nil {
		ev.Conn, ev.ConnID = c.pid, c.id
	}
	return ev
}

func closedEvent(c *Connection, hadError bool) *Closed {
	ev := &Closed{HadError: hadError}
	if c != nil {
		ev.Conn, ev.ConnID = c.pid, c.id
	}
	return ev
}

func connectedEvent(c *Connection) *Connected {
	return &Connected{Conn: c.pid, ConnID: c.id, RemoteAddr: addrString(c.remote), LocalAddr: addrString(c.local)}
}

func addrString(a interface{ String() string }) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// delivery says how an owner hands the frames of its connections to the
// user.
type delivery struct {
	onTokens      func([][]byte, *Connection) // all tokens of a read at once (server)
	onToken       func([]byte, *Connection)
	onRemoteClose func(*Connection)
	remoteClose   bool // report remoteClose frames (clients); the server ignores them
	onError       func(*Connection, error)
}

// withoutConn adapts an error callback that takes no connection.
func withoutConn(f func(error)) func(*Connection, error) {
	if f == nil {
		return nil
	}
	return func(_ *Connection, err error) { f(err) }
}

// deliver hands the frames of one read chunk to the user, in order, then
// lets the connection read on.
//
// A callback that panics is recovered: the panic is reported to onError and
// to the handler PID as an error (ErrHandlerPanic, with the value), the token
// that caused it is skipped, and delivery goes on with the next one. The
// connection stays open: the handler failed, not the connection, so this
// error event is the one not followed by close.
func (e *events) deliver(ctx actor.Context, m connFrames, d *delivery) {
	defer ctx.Send(m.c.pid, framesDone{})
	if d.onTokens != nil {
		e.deliverBatch(ctx, m, d)
		return
	}
	for _, f := range m.frames {
		var err error
		if f.Kind == wire.KindRemoteClose {
			if !d.remoteClose {
				continue
			}
			if d.onRemoteClose != nil {
				err = e.call("OnRemoteClose", func() { d.onRemoteClose(m.c) })
			}
			e.tell(ctx, &RemoteClosed{Conn: m.c.pid, ConnID: m.c.id})
		} else {
			if d.onToken != nil {
				err = e.call("OnToken", func() { d.onToken(f.Token, m.c) })
			}
			if e.handler != nil {
				ctx.Send(e.handler, &TokenReceived{Conn: m.c.pid, ConnID: m.c.id, Data: f.Token})
			}
		}
		if err != nil {
			e.reportPanic(ctx, m.c, d, err)
		}
	}
}

// deliverBatch hands every token of the batch to onTokens in one call
// (remoteClose frames from a client are ignored, as by the original server).
func (e *events) deliverBatch(ctx actor.Context, m connFrames, d *delivery) {
	tokens := make([][]byte, 0, len(m.frames))
	for _, f := range m.frames {
		if f.Kind == wire.KindToken {
			tokens = append(tokens, f.Token)
			if e.handler != nil {
				ctx.Send(e.handler, &TokenReceived{Conn: m.c.pid, ConnID: m.c.id, Data: f.Token})
			}
		}
	}
	if err := e.call("OnTokens", func() { d.onTokens(tokens, m.c) }); err != nil {
		e.reportPanic(ctx, m.c, d, err)
	}
}

func (e *events) reportPanic(ctx actor.Context, c *Connection, d *delivery, err error) {
	if d.onError != nil {
		_ = e.call("error callback", func() { d.onError(c, err) })
	}
	e.tell(ctx, errorEvent(c, err))
}
