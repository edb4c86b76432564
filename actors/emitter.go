package actors

import (
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tokenserver/tokenserver/wire"
)

// emitter is the one path of every event to the user. It runs inside the
// owning actor (server, client, or the owner of a standalone connection), so
// callbacks never run concurrently with each other. Each event is built once,
// as its plain-data message (events.go); the owner's callback for it runs,
// recovered from panics; then the message goes to the handler PID.
//
// Tokens take a path of their own, without a message per token unless there
// is a handler PID: they are the hot path.
type emitter struct {
	handler *actor.PID
	log     *slog.Logger
	// callbacks calls the user's callback for ev, if one is set. c is the
	// connection concerned (nil for the server's or client's own events), err
	// the Go error behind an ErrorOccurred or TokensDropped.
	callbacks func(ev any, c *Connection, err error)
	tokens    tokenCallbacks
	// running counts callbacks in progress (Shutdown looks at it).
	running *atomic.Int32
	// stats counts every event (nil: standalone connections count nothing).
	stats *stats
	// unwatch ends the watch for events that end as dead letters at the
	// handler (handlerpid.go); nil without one.
	unwatch func()
	// lentBatch is the batch callback's slice, reused when tokens are lent.
	lentBatch [][]byte
}

// tokenCallbacks are the owner's token callbacks.
type tokenCallbacks struct {
	one func(token []byte, c *Connection)
	// redelivered, if set, takes the tokens flagged as redelivered
	// (ServerOptions.OnRedelivered).
	redelivered func(token []byte, c *Connection)
	batch       func(tokens [][]byte, c *Connection) // replaces one when set
	// remoteClose: remoteClose frames are events (clients and standalone
	// connections); a server ignores them, as the original does.
	remoteClose bool
	// lent: the tokens are lent for the call (LendTokens), and so is the
	// batch callback's slice, which the emitter reuses.
	lent bool
}

func newEmitter(handler *actor.PID, log *slog.Logger, running *atomic.Int32,
	callbacks func(any, *Connection, error), tokens tokenCallbacks) *emitter {
	if running == nil {
		running = new(atomic.Int32)
	}
	return &emitter{handler: handler, log: log, callbacks: callbacks, tokens: tokens, running: running}
}

// emit delivers one event.
func (e *emitter) emit(ctx actor.Context, ev any, c *Connection, err error) {
	e.stats.event(ev, c, err)
	if perr := e.run(ev, c, err); perr != nil {
		e.panicked(ctx, c, perr)
	}
	if e.handler != nil {
		ctx.Send(e.handler, ev)
	}
}

// run calls the callback of ev and turns a panic into ErrHandlerPanic.
func (e *emitter) run(ev any, c *Connection, err error) (perr error) {
	e.running.Add(1)
	defer func() {
		e.running.Add(-1)
		if v := recover(); v != nil {
			perr = e.recovered(v)
		}
	}()
	e.callbacks(ev, c, err)
	return nil
}

func (e *emitter) recovered(v any) error {
	e.log.Error("handler panicked", "value", v)
	return fmt.Errorf("%w: %v", ErrHandlerPanic, v)
}

// panicked reports a callback that panicked as an error event, which is not
// followed by close: the handler failed, not the connection. A panic of the
// error callback itself is only logged.
func (e *emitter) panicked(ctx actor.Context, c *Connection, err error) {
	e.stats.panicked()
	ev := errorEvent(c, err)
	_ = e.run(ev, c, err)
	if e.handler != nil {
		ctx.Send(e.handler, ev)
	}
}

// deliverChunk delivers the frames of one read chunk, then hands the frames
// slice back to its connection (framesDone), which may read on and reuse it.
func (e *emitter) deliverChunk(ctx actor.Context, m connFrames) {
	e.deliver(ctx, m)
	ctx.Send(m.c.PID(), framesDone{m.frames})
}

// drained emits c's drain event.
func (e *emitter) drained(ctx actor.Context, c *Connection) {
	e.emit(ctx, &Drained{Conn: c.PID(), ConnID: c.id}, c, nil)
}

// deliver hands the frames of one read chunk to the user, in order: each
// token to the token callback and, as a TokenReceived, to the handler PID.
// A token whose callback panics is reported (ErrHandlerPanic) and skipped;
// delivery goes on with the next one.
//
// On token/2 each token has its number in its session (m.seq counts from the
// chunk's first), and those up to m.redelivered are flagged: they go to the
// redelivered callback when there is one.
func (e *emitter) deliver(ctx actor.Context, m connFrames) {
	if e.tokens.batch != nil {
		e.deliverBatch(ctx, m)
		return
	}
	c := m.c
	e.running.Add(1)
	defer e.running.Add(-1)
	seq := m.seq
	for _, f := range m.frames {
		switch f.Kind {
		case wire.KindToken:
		case wire.KindRemoteClose:
			if e.tokens.remoteClose {
				e.emit(ctx, &RemoteClosed{Conn: c.PID(), ConnID: c.id}, c, nil)
			}
			continue
		default: // the runtime's own control frames never reach the user
			continue
		}
		again := seq != 0 && seq <= m.redelivered
		if cb := e.tokens.callback(again); cb != nil {
			if err := e.runToken(cb, f.Token, c); err != nil {
				e.panicked(ctx, c, err)
			}
		}
		if e.handler != nil {
			ctx.Send(e.handler, &TokenReceived{Conn: c.PID(), ConnID: c.id, Data: f.Token, Seq: seq, Redelivered: again, Session: c.Session()})
		}
		if seq != 0 {
			seq++
		}
	}
}

// callback is the token callback of a token (again: flagged redelivered).
func (t tokenCallbacks) callback(again bool) func([]byte, *Connection) {
	if again && t.redelivered != nil {
		return t.redelivered
	}
	return t.one
}

func (e *emitter) runToken(cb func([]byte, *Connection), tok []byte, c *Connection) (perr error) {
	defer func() {
		if v := recover(); v != nil {
			perr = e.recovered(v)
		}
	}()
	cb(tok, c)
	return nil
}

// deliverBatch hands every token of the chunk to the batch callback in one
// call (remoteClose frames are ignored: only a server has a batch callback),
// but for those flagged redelivered when there is a callback for them.
func (e *emitter) deliverBatch(ctx actor.Context, m connFrames) {
	c := m.c
	var tokens [][]byte
	if e.tokens.lent {
		tokens = e.lentBatch[:0]
		defer func() { clear(tokens); e.lentBatch = tokens[:0] }()
	} else {
		tokens = make([][]byte, 0, len(m.frames))
	}
	seq := m.seq
	for _, f := range m.frames {
		if f.Kind != wire.KindToken {
			continue
		}
		again := seq != 0 && seq <= m.redelivered
		if e.handler != nil {
			ctx.Send(e.handler, &TokenReceived{Conn: c.PID(), ConnID: c.id, Data: f.Token, Seq: seq, Redelivered: again, Session: c.Session()})
		}
		if seq != 0 {
			seq++
		}
		if again && e.tokens.redelivered != nil {
			e.running.Add(1)
			err := e.runToken(e.tokens.redelivered, f.Token, c)
			e.running.Add(-1)
			if err != nil {
				e.panicked(ctx, c, err)
			}
			continue
		}
		tokens = append(tokens, f.Token)
	}
	if len(tokens) == 0 {
		return
	}
	if err := e.runTokens(tokens, c); err != nil {
		e.panicked(ctx, c, err)
	}
}

func (e *emitter) runTokens(tokens [][]byte, c *Connection) (perr error) {
	e.running.Add(1)
	defer func() {
		e.running.Add(-1)
		if v := recover(); v != nil {
			perr = e.recovered(v)
		}
	}()
	e.tokens.batch(tokens, c)
	return nil
}

// peerCallbacks are the callbacks a client and a standalone connection have
// in common: those of the one connection they own.
type peerCallbacks struct {
	onRemoteClose func(c *Connection)
	onError       func(err error)
	onClose       func(hadError bool)
	onDrain       func()
	onDropped     func(tokens [][]byte, reason error)
}

// call calls the callback of ev, if it is one of these and set.
func (p peerCallbacks) call(ev any, c *Connection, err error) {
	switch ev := ev.(type) {
	case *RemoteClosed:
		if p.onRemoteClose != nil {
			p.onRemoteClose(c)
		}
	case *ErrorOccurred:
		if p.onError != nil {
			p.onError(err)
		}
	case *Closed:
		if p.onClose != nil {
			p.onClose(ev.HadError)
		}
	case *Drained:
		if p.onDrain != nil {
			p.onDrain()
		}
	case *TokensDropped:
		if p.onDropped != nil {
			p.onDropped(ev.Tokens, err)
		}
	}
}

// The events of a connection, built from its handle.

func errorEvent(c *Connection, err error) *ErrorOccurred {
	ev := &ErrorOccurred{Code: ErrorCode(err), Message: err.Error()}
	if c != nil {
		ev.Conn, ev.ConnID = c.PID(), c.id
	}
	return ev
}

func closedEvent(c *Connection, hadError bool) *Closed {
	ev := &Closed{HadError: hadError}
	if c != nil {
		ev.Conn, ev.ConnID = c.PID(), c.id
	}
	return ev
}

func connectedEvent(c *Connection) *Connected {
	return &Connected{Conn: c.PID(), ConnID: c.id, RemoteAddr: addrString(c.RemoteAddr()), LocalAddr: addrString(c.LocalAddr()),
		Session: c.Session(), PeerReceived: c.PeerReceived()}
}

func droppedEvent(c *Connection, tokens [][]byte, reason error) *TokensDropped {
	ev := &TokensDropped{Tokens: tokens, Code: ErrorCode(reason), Message: reason.Error()}
	if c != nil {
		ev.Conn, ev.ConnID = c.PID(), c.id
	}
	return ev
}

func addrString(a interface{ String() string }) string {
	if a == nil {
		return ""
	}
	return a.String()
}
