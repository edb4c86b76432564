package actors

import (
	"log/slog"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tokenserver/tokenserver/actors/internal/dispatch"
	"github.com/tokenserver/tokenserver/wire"
)

// standaloneActor owns a connection made by NewConnection: it delivers its
// events and stops after its close.
type standaloneActor struct {
	ev     *emitter
	system *actor.ActorSystem
	owned  bool
	pool   *dispatch.WorkerPool // its dispatcher
}

func newStandalone(opts ConnectionOptions, log *slog.Logger, system *actor.ActorSystem, owned bool, pool *dispatch.WorkerPool) *standaloneActor {
	tokens := tokenCallbacks{one: opts.OnToken, remoteClose: true}
	a := &standaloneActor{ev: newEmitter(opts.Handler, log, nil, opts.callback, tokens), system: system, owned: owned, pool: pool}
	a.ev.watchDeadLetters(system, "connection")
	return a
}

// callback calls the option's callback for one event.
func (o *ConnectionOptions) callback(ev any, c *Connection, err error) {
	peerCallbacks{o.OnRemoteClose, o.OnError, o.OnClose, o.OnDrain, o.OnDropped}.call(ev, c, err)
}

// Receive handles one message.
func (a *standaloneActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case connUp:
		a.ev.emit(ctx, connectedEvent(m.c), m.c, nil)
	case connFrames:
		a.ev.deliverChunk(ctx, m)
	case connFailed:
		a.ev.emit(ctx, errorEvent(m.c, m.err), m.c, m.err)
	case connDrained:
		a.ev.drained(ctx, m.c)
	case connDown:
		reportDropped(ctx, a.ev, m)
		a.ev.emit(ctx, closedEvent(m.c, m.hadError), m.c, nil)
		ctx.Stop(ctx.Self())
	case *actor.Stopped:
		a.ev.stopWatching()
		if a.owned {
			a.system.Shutdown()
		}
		a.pool.Close()
	}
}

// reportDropped reports the frames a connection never wrote, as tokens: the
// maybe-sent ones first, then the unsent ones.
func reportDropped(ctx actor.Context, ev *emitter, m connDown) {
	if m.dropReason != nil {
		toks := decodeTokens(m.codec, m.maybeSent)
		toks = append(toks, decodeTokens(m.codec, m.unsent)...)
		if len(toks) > 0 {
			ev.emit(ctx, droppedEvent(m.c, toks, m.dropReason), m.c, m.dropReason)
		}
		return
	}
	if toks := decodeTokens(m.codec, m.maybeSent); len(toks) > 0 {
		ev.emit(ctx, droppedEvent(m.c, toks, ErrMaybeSent), m.c, ErrMaybeSent)
	}
	if toks := decodeTokens(m.codec, m.unsent); len(toks) > 0 {
		ev.emit(ctx, droppedEvent(m.c, toks, ErrNotSent), m.c, ErrNotSent)
	}
}

// decodeTokens turns frames encoded with codec back into the tokens Send
// was given (control frames are not tokens).
func decodeTokens(codec wire.Codec, frames []byte) [][]byte {
	if len(frames) == 0 {
		return nil
	}
	dec, err := codec.NewDecoder(len(frames) + 1)
	if err != nil {
		return nil
	}
	decoded, _ := dec.AppendFrames(nil, frames)
	tokens := make([][]byte, 0, len(decoded))
	for _, f := range decoded {
		if f.Kind == wire.KindToken {
			tokens = append(tokens, f.Token)
		}
	}
	return tokens
}
