package actors

import (
	"github.com/asynkron/protoactor-go/actor"
	"github.com/tokenserver/tokenserver/actors/internal/framepool"
	"github.com/tokenserver/tokenserver/wire"
)

// Large tokens are encoded and written in pieces, on a protocol whose codec
// can encode a frame piece by piece (wire.PieceEncoder: token/1, whose
// escaping costs). Send copies such a token as it is, without escaping it
// on the caller's goroutine, and the connection actor escapes it piecePart
// bytes at a time: it escapes the first piece itself and hands it to the
// write pump, and each next one is escaped on a goroutine of its own while
// the pump writes the last (pieceReady brings it back). It is not escaped
// by the actor, which runs inline on the goroutine that sends to it: after
// a write, that is the pump's, which would then escape and write in turn.
// So the write starts once one piece is escaped, not the whole token, the
// escaping of the rest runs beside the writing, and the token's escaped
// frame never exists whole: two pieces of it at most.
//
// A frame's pieces stay together. While a frame goes out in pieces, every
// frame sent after it waits (held) until its last piece is written: no
// batch holds anything after a piece, and a piece waiting in the outbox is
// its last segment. For the accounting the frame is one: its token counts
// as written with its last piece. If the connection fails once a piece went
// to the writer, the whole frame is maybe sent; before, it is unsent. It is
// handed back whole, encoded again from the token, which is kept until its
// last piece is written.

// pieceFrom is the size from which a token is sent in pieces, and piecePart
// the bytes of the token each piece encodes.
const (
	pieceFrom = 256 << 10
	piecePart = 64 << 10
)

// pieced is a token going out in pieces.
type pieced struct {
	token  []byte
	pooled bool // token is a frame pool buffer (a copy Send made)
	done   int  // bytes of token encoded so far
	begun  bool // a piece went to the writer: the frame may be on the wire
	// encoding: the next piece is being escaped on a goroutine.
	encoding bool

	// A piece waits in the outbox, at queuedAt.
	queued     bool
	queuedAt   int
	queuedLast bool

	// A piece is with the writer: at flightAt in its batch.
	flight     bool
	flightAt   int
	flightLast bool
	// handing: a piece is being handed to the writer (see writeSide.hand).
	handing bool
}

// left is what of the token's frame is still counted in the queue and not
// encoded: its bytes not encoded yet and the frame's end.
func (p *pieced) left() int {
	if p.done == len(p.token) {
		return 0
	}
	return len(p.token) - p.done + 1
}

// release gives the token's buffer back to the pool, unless a piece of it
// is being escaped: then the garbage collector takes it.
func (p *pieced) release() {
	if p.pooled && !p.encoding {
		framepool.Put(p.token)
	}
	p.token = nil
}

// rawSize is what a token sent in pieces counts for in the queue until it
// is encoded: its bytes and its frame's end.
func rawSize(token []byte) int { return len(token) + 1 }

// sendsInPieces reports whether a token of n bytes goes out in pieces on
// codec.
func sendsInPieces(codec wire.Codec, n int) bool {
	if n < pieceFrom {
		return false
	}
	_, ok := codec.(wire.PieceEncoder)
	return ok
}

// enqueueRaw takes a token to send in pieces, its rawSize counted in the
// queue. It waits behind a frame still going out in pieces; on a connection
// that no longer writes it is encoded whole and handed back unsent.
func (a *connActor) enqueueRaw(ctx actor.Context, token []byte, pooled bool) {
	w := &a.out
	switch {
	case w.big != nil:
		w.held = append(w.held, &sendBatch{raw: token, rawPooled: pooled, tokens: 1})
		a.checkFlow(ctx)
		return
	case a.phase == phaseSuspended || a.phase >= phaseClosing || w.writerClosed:
		frame := a.codec.AppendToken(framepool.Get(a.codec.FrameSizeHint(len(token))), token)
		a.h.shared.queued.Add(int64(len(frame) - rawSize(token)))
		if pooled {
			framepool.Put(token)
		}
		a.enqueue(ctx, frame, 1)
		return
	}
	w.big = &pieced{token: token, pooled: pooled}
	a.addPiece(ctx, encodePiece(a.codec, token, 0))
	a.pieceAhead(ctx)
	a.checkFlow(ctx)
}

// encodePiece escapes the piece of token that starts at its byte from,
// into a frame pool buffer.
func encodePiece(codec wire.Codec, token []byte, from int) pieceReady {
	part := token[from:min(from+piecePart, len(token))]
	last := from+len(part) == len(token)
	piece := codec.(wire.PieceEncoder).AppendTokenPiece(framepool.Get(codec.FrameSizeHint(len(part))), part, last)
	return pieceReady{piece: piece, part: len(part), last: last}
}

// addPiece takes the next piece of the token going out in pieces: it hands
// it to the writer, or queues it while the writer is busy.
func (a *connActor) addPiece(ctx actor.Context, r pieceReady) {
	w, p := &a.out, a.out.big
	piece, last := r.piece, r.last
	counted := r.part
	tokens := 0
	if last {
		counted++ // the frame's end
		tokens = 1
	}
	a.h.shared.queued.Add(int64(len(piece) - counted))
	p.done += r.part
	if w.writing {
		p.queued, p.queuedAt, p.queuedLast = true, w.queue.Size(), last
		w.queue.Push(piece, tokens)
		return
	}
	batch := append(w.spare, piece)
	w.spare = nil
	p.handing = true
	if a.handToWriter(ctx, batch, len(piece), tokens) {
		p.handing = false
		p.flight, p.flightAt, p.flightLast, p.begun = true, 0, last, true
	}
}

// pieceAhead has the next piece escaped on a goroutine while the writer
// writes the last one, so that it is ready when the writer is.
func (a *connActor) pieceAhead(ctx actor.Context) {
	p := a.out.big
	if p == nil || !a.out.writing || p.queued || p.encoding || p.done == len(p.token) {
		return
	}
	p.encoding = true
	codec, token, from, post := a.codec, p.token, p.done, a.post(ctx)
	go func() {
		r := encodePiece(codec, token, from)
		r.of = p
		post(r)
	}()
}

// onPieceReady takes a piece escaped on a goroutine: the next one of the
// token going out in pieces, unless that token was settled meanwhile (the
// connection failed), or the connection closes.
func (a *connActor) onPieceReady(ctx actor.Context, r pieceReady) {
	r.of.encoding = false
	if r.of != a.out.big || a.phase >= phaseClosing || a.out.writerClosed {
		framepool.Put(r.piece)
		return
	}
	a.addPiece(ctx, r)
	a.pieceAhead(ctx)
	a.checkFlow(ctx)
}

// takingPiece notes that the outbox, a piece its last segment, goes to the
// writer.
func (w *writeSide) takingPiece() {
	if p := w.big; p != nil && p.queued {
		p.queued = false
		p.flight, p.flightAt, p.flightLast, p.begun = true, p.queuedAt, p.queuedLast, true
	}
}

// pieceWritten settles a batch written in full that held a piece: after
// the frame's last piece, the token is done and what waited for it goes on
// (or is unsent, on a connection that closes); after another on a
// connection that closes, the frame is maybe sent.
func (a *connActor) pieceWritten(ctx actor.Context) {
	w, p := &a.out, a.out.big
	p.flight = false
	if !p.flightLast {
		if a.phase >= phaseClosing {
			w.dropBig(a.h.shared, a.codec)
		}
		return
	}
	w.big = nil
	p.release()
	held := w.held
	w.held = nil
	for _, b := range held {
		a.takeBatch(ctx, b)
	}
}

// dropBig gives up the frame going out in pieces, with no piece of it with
// the writer (or one the writer did not write in full): whole, encoded
// again, it is maybe sent if a piece of it went to the writer, else unsent;
// what waited in the outbox is unsent before it (a piece of it there is
// dropped), and what waited for it (held) after it. What of it is still
// counted in the queue leaves the count.
func (w *writeSide) dropBig(s *connShared, codec wire.Codec) {
	p := w.big
	if p == nil {
		return
	}
	w.unqueue(s)
	w.big = nil
	s.queued.Add(-int64(p.left()))
	if p.begun {
		w.maybeSent = codec.AppendToken(w.maybeSent, p.token)
	} else {
		w.unsent = codec.AppendToken(w.unsent, p.token)
	}
	p.release()
	w.unsendHeld(s, codec)
}

// unsendHeld moves what waited for a token going out in pieces to the
// unsent frames.
func (w *writeSide) unsendHeld(s *connShared, codec wire.Codec) {
	for _, b := range w.held {
		s.queued.Add(-int64(b.size()))
		w.unsent = b.appendEncoded(w.unsent, codec)
	}
	w.held = nil
}

// failPiece settles the writer's batch that held a piece, after a failed
// write of which written bytes went out in full: the frames before the
// piece as failInFlight does, then the frame going out in pieces, sent if
// its last piece was written in full, else maybe sent.
func (w *writeSide) failPiece(s *connShared, codec wire.Codec, st *stats, all []byte, written int) {
	p := w.big
	p.flight = false
	if p.flightLast && written == len(all) {
		_, tokens := codec.WholeFrames(all)
		st.wrote(written, tokens)
		w.big = nil
		p.release()
		w.unsendHeld(s, codec)
	} else {
		before := all[:p.flightAt]
		cut, tokens := codec.WholeFrames(before[:min(written, len(before))])
		st.wrote(written, tokens)
		w.maybeSent = append(w.maybeSent, before[cut:]...)
	}
	s.queued.Add(-int64(w.inFlightSize))
	w.writing, w.inFlight, w.inFlightSize = false, nil, 0
	w.dropBig(s, codec)
}

// appendEncoded appends the batch's frames, encoded with codec, to dst.
func (b *sendBatch) appendEncoded(dst []byte, codec wire.Codec) []byte {
	switch {
	case b.raw != nil:
		dst = codec.AppendToken(dst, b.raw)
		if b.rawPooled {
			framepool.Put(b.raw)
		}
		return dst
	case b.early != nil:
		return appendFrames(dst, codec, b.early.frames)
	}
	dst = append(dst, b.frames...)
	framepool.Put(b.frames)
	return dst
}
