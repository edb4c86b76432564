package actors

import (
	"errors"
	"fmt"
	"io"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tokenserver/tokenserver/actors/internal/framepool"
	"github.com/tokenserver/tokenserver/actors/internal/timer"
	"github.com/tokenserver/tokenserver/wire"
)

// The read side of the connection actor: chunks come from the read pump,
// become frames for the owner, and give their read credit back to the pump
// once delivered. The pump reads at most Limits.ReadWindow chunks ahead of
// that, so a handler that falls behind stops the reading and TCP pushes back
// on the peer.
//
// A chunk is delivered when the owner has run the callbacks for it
// (framesDone) and, with a handler PID, the handler has returned Credit for
// each of its tokens. The credit travels as a message, so the same rule holds
// for a handler on another node.

// readSide is the connection actor's state for reading.
type readSide struct {
	debts []chunkDebt // chunks handed to the owner, oldest first
	owed  int         // read credits held back while reading is paused
	// readOver: nothing more is read (the peer ended its side, or sent a
	// bad frame); the connection closes once every chunk read is delivered.
	readOver   bool
	creditWait timer.Timer    // bounds the wait for credit after the peer's end
	spare      [][]wire.Frame // frames slices the owner handed back, for reuse
	// The server's memory budget (server_budget.go): granted is what the
	// connection holds of it; while asking, it reads no more.
	granted    int
	asking     bool
	budgetWait timer.Timer
	// spanBufs: lent tokens (connConfig.lend) that span chunks are decoded
	// into buffers from framepool (spanBuffer); these are the ones the
	// decoder took and that no delivered token is known to hold yet, the
	// frame in progress's last.
	spanBufs [][]byte
}

// spanBuffer gives the decoder a buffer for a lent token that spans
// chunks, from framepool; it goes back there once the owner is done with
// the token (lentSpan, onDelivered).
func (r *readSide) spanBuffer(n int) []byte {
	b := framepool.Get(n)
	r.spanBufs = append(r.spanBufs, b)
	return b
}

// lendSpans makes the decoder take the buffers of tokens that span chunks
// from the pool, when tokens are lent; a decoder's buffers the last one
// took are forgotten.
func (a *connActor) lendSpans() {
	clear(a.in.spanBufs)
	a.in.spanBufs = a.in.spanBufs[:0]
	if src, ok := a.dec.(wire.BufferSource); ok && a.cfg.lend {
		src.SetBufferSource(a.in.spanBuffer)
	}
}

// lentSpan returns the pool buffer that frames' first token lies in, if it
// is a token that spanned chunks and was decoded into one (only the first
// frame of a chunk can be: every other one starts in the chunk), and
// forgets the buffers no token will hold: one that the decoder grew past,
// and any but the last while a frame is in progress.
func (r *readSide) lentSpan(frames []wire.Frame, inProgress bool) (buf []byte) {
	if len(r.spanBufs) == 0 {
		return nil
	}
	if len(frames) > 0 && frames[0].Kind == wire.KindToken && len(frames[0].Token) > 0 {
		first := &frames[0].Token[0]
		for i, b := range r.spanBufs {
			if cap(b) > 0 && &b[:1][0] == first {
				buf = b
				r.spanBufs = append(r.spanBufs[:i], r.spanBufs[i+1:]...)
				break
			}
		}
	}
	switch n := len(r.spanBufs); {
	case !inProgress:
		clear(r.spanBufs)
		r.spanBufs = r.spanBufs[:0]
	case n > 1:
		last := r.spanBufs[n-1]
		clear(r.spanBufs)
		r.spanBufs = append(r.spanBufs[:0], last)
	}
	return buf
}

// maxSpareFrames bounds the frames slices kept for reuse, and the size of
// each: one of a chunk of tiny tokens is large, and rare.
const (
	maxSpare       = 4
	maxSpareFrames = 8192
)

// framesSlice returns an empty frames slice, reused if one is spare.
func (r *readSide) framesSlice() []wire.Frame {
	if n := len(r.spare); n > 0 {
		f := r.spare[n-1]
		r.spare = r.spare[:n-1]
		return f
	}
	return nil
}

// giveBack keeps a delivered chunk's frames slice for the next chunk, with
// the tokens it points to released (they are the user's).
func (r *readSide) giveBack(f []wire.Frame) {
	if cap(f) == 0 || cap(f) > maxSpareFrames || len(r.spare) >= maxSpare {
		return
	}
	clear(f)
	r.spare = append(r.spare, f[:0])
}

// chunkDebt is what a chunk handed on still waits for.
type chunkDebt struct {
	ownerDone bool  // framesDone came
	handler   int   // tokens the handler has not credited yet
	at        int64 // its arrival, for the delivery histogram (stats.stamp)
	// tokens and bytes: what the handler takes with it (token/2's ACK).
	tokens, bytes int
	// chunk: the read chunk its tokens lie in, lent to the owner's
	// callbacks (connConfig.lend), for the pump to read into again once
	// the owner is done (framesDone); span: the framepool buffer of its
	// first token, lent too, when that one spanned chunks.
	chunk, span []byte
}

// onChunk decodes a chunk the read pump read and hands its frames to the
// owner, also once the connection has failed: the peer wrote them in full.
func (a *connActor) onChunk(ctx actor.Context, data []byte) {
	if a.dec == nil {
		// Bytes before the protocol is open: a token/2 client that did not
		// wait for WELCOME.
		a.badInput(ctx, fmt.Errorf("%w: data before the token/2 session was open", ErrProtocol))
		return
	}
	// The chunk is the actor's (the pump handed it over): escaped tokens
	// are decoded in place.
	frames, err := a.dec.AppendFramesInPlace(a.in.framesSlice(), data)
	if !a.dec.ChunkKept() && a.reader != nil {
		// Every token it completed spans chunks and was copied out: the
		// pump can read into it again.
		a.reader.Recycle(data)
	}
	var seq, redelivered uint64
	if a.sess != nil {
		// token/2: acknowledgements and END are this actor's; the owner
		// gets the tokens (and CLOSE), numbered.
		seq, redelivered = a.sess.recv+1, a.sess.redelivered
		var cerr error
		frames, cerr = a.control(ctx, frames)
		if err == nil {
			err = cerr
		}
	}
	tokens, bytes := 0, 0
	for i := range frames {
		if frames[i].Kind == wire.KindToken {
			tokens++
			bytes += len(frames[i].Token)
		}
	}
	a.cfg.stats.read(len(data), tokens)
	if a.sess != nil {
		a.sess.recv += uint64(tokens)
		if redelivered >= seq {
			a.cfg.stats.redeliveredIn(int(min(redelivered-seq+1, uint64(tokens))))
		}
	}
	if len(frames) > 0 {
		debt := chunkDebt{at: a.cfg.stats.stamp(), tokens: tokens, bytes: bytes}
		if a.cfg.handlerCredit {
			debt.handler = tokens // the owner sends each token to the handler
		}
		if a.cfg.lend {
			if a.dec.ChunkKept() {
				debt.chunk = data
			}
			debt.span = a.in.lentSpan(frames, a.dec.Buffered() > 0)
		}
		a.in.debts = append(a.in.debts, debt)
		ctx.Send(a.cfg.owner, connFrames{c: a.h, frames: frames, seq: seq, redelivered: redelivered})
	} else {
		a.in.giveBack(frames)
		a.releaseRead()
	}
	if err != nil {
		if !errors.Is(err, ErrProtocol) { // a decoder's; control's says it already
			err = fmt.Errorf("%w: %w", ErrProtocol, err)
		}
		a.badInput(ctx, err)
		return
	}
	a.checkBudget(ctx)
}

// control takes token/2's ACK and END out of a chunk's frames and acts on
// them; the tokens and CLOSE stay, in order. An ACK that does not fit is a
// protocol error.
func (a *connActor) control(ctx actor.Context, frames []wire.Frame) ([]wire.Frame, error) {
	out := frames[:0]
	var err error
	for _, f := range frames {
		switch f.Kind {
		case wire.KindAck:
			if err == nil {
				err = a.onAck(ctx, f.Value)
			}
		case wire.KindEnd:
			if err == nil {
				a.onEnd(ctx)
			}
		default:
			out = append(out, f)
		}
	}
	return out, err
}

// badInput ends a connection whose peer sent a bad frame (or ended inside
// one): the error event now, behind the tokens read before it; then, as
// when the peer ends its side, the connection closes once those tokens are
// delivered and the replies sent meanwhile are written. Nothing more is
// read.
func (a *connActor) badInput(ctx actor.Context, err error) {
	if a.end.err != nil || (a.phase != phaseOpen && a.phase != phaseDraining) {
		return // a decoder's error is sticky: it comes again with each chunk
	}
	a.fault(err)
	a.reportError(ctx, true)
	if a.reader != nil {
		a.reader.Stop()
	}
	if a.phase == phaseOpen {
		a.endReading(ctx)
	}
}

// endReading: nothing more is read. The connection closes once every chunk
// read is delivered, so that replies to its tokens still go out; a handler
// that returns no credit is waited for only up to the close timeout.
func (a *connActor) endReading(ctx actor.Context) {
	if a.in.readOver {
		return
	}
	a.in.readOver = true
	if len(a.in.debts) == 0 {
		a.drain(ctx)
	} else {
		a.in.creditWait.Start(ctx, a.cfg.limits.CloseTimeout)
	}
}

// onDelivered: the owner has delivered the oldest chunk it had not.
func (a *connActor) onDelivered(ctx actor.Context, frames []wire.Frame) {
	a.in.giveBack(frames)
	for i := range a.in.debts {
		if d := &a.in.debts[i]; !d.ownerDone {
			d.ownerDone = true
			if d.chunk != nil && a.reader != nil {
				a.reader.Recycle(d.chunk) // lent: the owner is done with it
			}
			if d.span != nil {
				framepool.Put(d.span)
			}
			d.chunk, d.span = nil, nil
			break
		}
	}
	a.settle(ctx)
}

// onCredit: the handler has processed n more tokens, in order.
func (a *connActor) onCredit(ctx actor.Context, n int) {
	for i := 0; i < len(a.in.debts) && n > 0; i++ {
		d := &a.in.debts[i]
		take := min(n, d.handler)
		d.handler -= take
		n -= take
	}
	a.settle(ctx)
}

// settle gives back the read credit of every delivered chunk at the front.
func (a *connActor) settle(ctx actor.Context) {
	tokens, bytes, k := 0, 0, 0
	for ; k < len(a.in.debts) && a.in.debts[k].ownerDone && a.in.debts[k].handler == 0; k++ {
		d := a.in.debts[k]
		a.cfg.stats.delivered(d.at)
		tokens += d.tokens
		bytes += d.bytes
		a.releaseRead()
	}
	// The rest moves to the front (a read window of them at most), so that
	// the next chunk's debt needs no new array: one allocation per chunk or
	// so, when the settled ones were cut off the front.
	a.in.debts = a.in.debts[:copy(a.in.debts, a.in.debts[k:])]
	if a.sess != nil && tokens > 0 {
		a.took(ctx, tokens, bytes)
	}
	if len(a.in.debts) == 0 && a.in.readOver {
		a.drain(ctx)
	}
}

// releaseRead lets the pump read one chunk more, unless reading is paused
// by flow control.
func (a *connActor) releaseRead() {
	if a.reader == nil {
		return
	}
	if a.out.paused || a.in.asking {
		a.in.owed++
		return
	}
	a.reader.Release()
}

// resumeReading gives back the credits held while paused.
func (a *connActor) resumeReading() {
	if a.out.paused || a.in.asking {
		return // the other reason to hold reading still holds
	}
	for ; a.in.owed > 0 && a.reader != nil; a.in.owed-- {
		a.reader.Release()
	}
}

func (a *connActor) onReadEnded(ctx actor.Context, err error) {
	a.reader = nil
	switch {
	case a.phase == phaseSuspended:
		a.maybeSuspended(ctx)
	case a.phase == phaseGreeting && errors.Is(err, errHandedOver):
		a.handOver(ctx)
	case a.phase == phaseGreeting:
		a.die(ctx, err)
	case a.resumable():
		// The socket broke (a reset, an end of stream before END, even
		// inside a frame, which comes again): the session goes on over
		// the next one.
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		a.breakSession(ctx, fmt.Errorf("%w: read: %w", ErrConnection, err))
	case a.phase == phaseDraining && a.sess != nil && !a.out.writerClosed:
		// The peer is gone before the clean end was done: nothing more
		// will be acknowledged.
		a.sess.gaveUp = true
		a.flushed(ctx)
	case a.phase == phaseHandshaking:
		// The handshake failed (one cut short by the peer ends in EOF too:
		// still an error). The pump wrapped it in ErrHandshake.
		a.die(ctx, err)
	case a.phase == phaseOpen && errors.Is(err, io.EOF) && a.dec.Buffered() > 0:
		// The peer closed in the middle of a frame: that token is lost.
		a.badInput(ctx, fmt.Errorf("%w: connection closed inside a frame (%d bytes): %w",
			ErrProtocol, a.dec.Buffered(), io.ErrUnexpectedEOF))
	case a.phase == phaseOpen && (err == nil || errors.Is(err, io.EOF)):
		// The peer closed its side (or we stopped reading after bad
		// input): as Node does (allowHalfOpen false), we finish writing and
		// close ours once every token read is delivered.
		a.endReading(ctx)
	case a.phase == phaseOpen && a.in.readOver:
		// Reading had ended already (bad input): the close is on its way.
	case a.phase == phaseOpen:
		a.die(ctx, fmt.Errorf("%w: read: %w", ErrConnection, err))
	default:
		a.reportError(ctx, false)
		a.finish(ctx)
	}
}
