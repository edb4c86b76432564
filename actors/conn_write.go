package actors

import (
	"errors"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tokenserver/tokenserver/actors/internal/framepool"
	"github.com/tokenserver/tokenserver/actors/internal/outbox"
	"github.com/tokenserver/tokenserver/tlsio"
	"github.com/tokenserver/tokenserver/wire"
)

// The write side of the connection actor: frames from Send (taken from the
// shared sends stack) and from SendToken messages, encoded with the
// connection's codec, wait in the outbox while the writer pump writes the
// previous batch, and leave together. A batch written in full leaves the
// write side in one place, wrote.
//
// Flow control: the queue is every byte Send took and the writer has not
// written yet (the shared counter, which the handle adds to). Past the
// high-water mark the actor stops reading its socket (TCP pushes back on a
// peer that sends faster than it reads); under the low-water mark it reads
// again and tells the owner (drain event). Only the write timeout (the peer
// read nothing while data waited) or the hard cap cut the peer.
//
// Accounting: a frame leaves the queue written (chunkWritten), maybe written
// (in the batch of a write that failed), or unsent (still queued when the
// connection died, or arriving after); the last two reach the owner in
// connDown, in order, and the owner reports them (OnDropped) or, on a
// client with a reconnect buffer, sends the unsent ones again.

// writeSide is the connection actor's state for writing.
type writeSide struct {
	hwm, lwm int64

	queue        outbox.Outbox // frames waiting while the writer is busy
	writing      bool          // a batch is with the writer
	inFlight     [][]byte      // that batch
	inFlightSize int
	// inFlightTokens is how many tokens that batch holds (for the stats).
	inFlightTokens int
	// inFlightExtra is the bytes of the batch not counted in the queue:
	// the actor's own control frames (token/2's ACK, END, WELCOME).
	inFlightExtra int
	writerClosed  bool // the writer takes nothing more
	paused        bool // over the high-water mark: not reading
	// owed: the queue passed the high-water mark (or a Send saw it over):
	// a drain event follows once it is under the low-water mark.
	owed bool
	// spare is the slice of a batch the writer is done with, for the next.
	spare [][]byte

	// big is the token going out in pieces (conn_pieces.go), or nil; held
	// the batches sent after it, oldest first, which wait for it.
	big  *pieced
	held []*sendBatch

	maybeSent []byte // frames of the write that failed
	unsent    []byte // frames never written, in order
}

func newWriteSide(l Limits) writeSide {
	return writeSide{hwm: int64(l.HighWaterMark), lwm: int64(l.LowWaterMark)}
}

// sendFromMessage handles SendToken from an actor: the same as Send on the
// handle, counted here. Once the connection is closing the token is handed
// back like any frame that was not written.
func (a *connActor) sendFromMessage(ctx actor.Context, token []byte) {
	s := a.h.shared
	if a.codec == nil {
		// Before the handshake: the token waits with those Send took, on
		// the sends stack, whatever comes (the end takes it from there).
		b := newEarlyBatch([]wire.Frame{{Kind: wire.KindToken, Token: token}}, false)
		n := int64(b.size() + msgOverhead)
		over := !s.reserve(n)
		if over {
			s.queued.Add(n) // counted all the same while it waits
		}
		s.push(b)
		if over {
			a.die(ctx, errQueueFull(s.max))
		}
		return
	}
	open := (a.phase == phaseOpen || a.phase == phaseSuspended) && !s.gate.isClosed()
	if open && sendsInPieces(a.codec, len(token)) {
		if s.reserve(int64(rawSize(token))) {
			a.enqueueRaw(ctx, token, false)
			return
		}
		a.die(ctx, errQueueFull(s.max))
		open = false
	}
	frame := a.codec.AppendToken(nil, token)
	if open {
		if s.reserve(int64(len(frame))) {
			a.enqueue(ctx, frame, 1)
			return
		}
		a.die(ctx, errQueueFull(s.max))
	}
	a.out.unsent = append(a.out.unsent, frame...)
}

// errQueueFull is the error of a connection whose queue reached its hard
// cap of max bytes.
func errQueueFull(max int64) error {
	return fmt.Errorf("%w: %w (%d bytes)", ErrSlowConsumer, ErrQueueFull, max)
}

// takeSends takes the frames waiting on the sends stack, oldest first,
// once the protocol is known; those sent before are encoded now.
func (a *connActor) takeSends(ctx actor.Context) {
	if a.codec == nil {
		return
	}
	s := a.h.shared
	for b := s.takeSends(); b != nil; {
		next := b.next
		b.next = nil
		s.queued.Add(-msgOverhead) // off the stack
		a.takeBatch(ctx, b)
		b = next
	}
}

// takeBatch takes one batch Send made, counted in the queue: encoded now if
// it was sent before the protocol was known, in pieces if it is a large
// token.
func (a *connActor) takeBatch(ctx actor.Context, b *sendBatch) {
	switch {
	case b.raw != nil:
		a.enqueueRaw(ctx, b.raw, b.rawPooled)
	case b.early != nil:
		frames := a.encode(b.early.frames)
		a.h.shared.queued.Add(int64(len(frames) - b.early.size))
		a.enqueue(ctx, frames, b.tokens)
	default:
		a.enqueue(ctx, b.frames, b.tokens)
	}
}

// encode encodes frames with the connection's protocol.
func (a *connActor) encode(frames []wire.Frame) []byte {
	return appendFrames(nil, a.codec, frames)
}

// appendFrames appends frames, encoded with codec, to dst.
func appendFrames(dst []byte, codec wire.Codec, frames []wire.Frame) []byte {
	for _, f := range frames {
		if f.Kind == wire.KindToken {
			dst = codec.AppendToken(dst, f.Token)
			continue
		}
		dst, _ = codec.AppendControl(dst, f) // remoteClose: every protocol has it
	}
	return dst
}

// enqueue takes one frame (or a batch of frames, tokens of them tokens)
// already counted in the queue.
func (a *connActor) enqueue(ctx actor.Context, frame []byte, tokens int) {
	w := &a.out
	if w.big != nil {
		// A token going out in pieces: it waits for its last piece,
		// counted in the queue all the same (reading pauses past the
		// high-water mark).
		w.held = append(w.held, &sendBatch{frames: frame, tokens: tokens})
		a.checkFlow(ctx)
		return
	}
	if a.phase == phaseSuspended {
		// No socket: it waits for the session's next one.
		w.queue.Push(frame, tokens)
		a.checkFlow(ctx)
		return
	}
	if a.phase >= phaseClosing || w.writerClosed {
		// Send saw the connection alive, but it closed meanwhile.
		a.h.shared.queued.Add(-int64(len(frame)))
		w.unsent = append(w.unsent, frame...)
		framepool.Put(frame)
		return
	}
	if !w.writing {
		batch := append(w.spare, frame)
		w.spare = nil
		if !a.handToWriter(ctx, batch, len(frame), tokens) {
			return
		}
	} else {
		w.queue.Push(frame, tokens)
	}
	a.checkFlow(ctx)
}

// frameWriter is how the write side hands batches to the write pump
// (tlsio.WritePump). Write never blocks: it refuses a batch while the pump
// still holds one that it has not picked up. WriteNow writes a small batch
// at once, on the actor's goroutine, when the socket's send queue is empty
// (so that the write cannot block): no hand-off to the pump, whose wake-up
// is most of a round trip's cost on one connection.
type frameWriter interface {
	Write(batch ...[]byte) bool
	WriteNow(batch [][]byte) (n int, wrote bool, err error)
	Close()
}

// errWriterRefused: the write pump refused a batch. The actor hands one only
// after the last one's chunkWritten, when the pump holds none, so this is a
// broken invariant; it fails the connection rather than lose the batch.
var errWriterRefused = errors.New("tokenserver: internal error: the write pump refused a batch")

func (a *connActor) handToWriter(ctx actor.Context, batch [][]byte, size, tokens int) bool {
	return a.handToWriterExtra(ctx, batch, size, tokens, 0)
}

// handToWriterExtra hands the writer a batch of which size bytes, holding
// tokens tokens, are counted in the queue, and extra bytes are the actor's
// own control frames. On token/2 its data frames get their numbers, and an
// ACK of what the handler took rides with it.
func (a *connActor) handToWriterExtra(ctx actor.Context, batch [][]byte, size, tokens, extra int) bool {
	if s := a.sess; s != nil {
		s.numberBatch(tokens)
		if s.ackDue() {
			ack := a.ackFrame()
			batch = append(batch, ack)
			extra += len(ack)
		}
	}
	taken, now, n := a.out.hand(a.writer, a.h.shared, batch, size, tokens, a.ownerHere.Load())
	if !taken {
		a.die(ctx, fmt.Errorf("%w: %w", ErrConnection, errWriterRefused))
		return false
	}
	a.out.inFlightExtra = extra
	if now {
		// Written already: settled as the pump's write would be, by the
		// message that follows this one (a failed write ends the pump,
		// whose writeEnded settles it).
		ctx.Send(ctx.Self(), chunkWritten{n})
	}
	return true
}

// hand gives writer a batch of size bytes holding tokens tokens and reports
// whether it took it, and whether it wrote it at once (now), n bytes of it
// in full. A batch it refuses never reached the socket: it is unsent (and
// out of the queue count), never lost.
func (w *writeSide) hand(writer frameWriter, s *connShared, batch [][]byte, size, tokens int, tryNow bool) (taken, now bool, n int) {
	if tryNow {
		if n, wrote, err := writer.WriteNow(batch); wrote {
			w.writing = true
			w.inFlight, w.inFlightSize, w.inFlightTokens = batch, size, tokens
			return true, err == nil, n
		}
	}
	if !writer.Write(batch...) {
		frames := batch
		if w.big != nil && w.big.handing {
			// The piece is settled with its frame, whole (dropBig).
			frames = batch[:len(batch)-1]
		}
		for _, b := range frames {
			w.unsent = append(w.unsent, b...)
		}
		outbox.Release(batch)
		s.queued.Add(-int64(size))
		return false, false, 0
	}
	w.writing = true
	w.inFlight, w.inFlightSize, w.inFlightTokens = batch, size, tokens
	return true, false, 0
}

func (a *connActor) onWritten(ctx actor.Context, n int) {
	w := &a.out
	piece := w.big != nil && w.big.flight
	if a.sess != nil {
		// token/2: the batch stays until the peer acknowledges it (an ACK
		// may have covered it before its write was done).
		a.cfg.stats.wrote(n, w.inFlightTokens)
		a.retain()
		a.onAcked(a.sess.acked)
	} else {
		w.wrote(a.h.shared, a.cfg.stats, n)
	}
	if piece {
		a.pieceWritten(ctx)
	}
	if a.phase >= phaseClosing || a.phase == phaseSuspended {
		return
	}
	switch {
	case w.writing:
		// What waited for a token sent in pieces went to the writer.
	case !w.queue.Empty():
		size, tokens := w.queue.Size(), w.queue.Tokens()
		w.takingPiece()
		if !a.handToWriter(ctx, w.queue.Take(), size, tokens) {
			return
		}
		a.pieceAhead(ctx)
	case w.big != nil:
		// The next piece is being escaped: pieceReady hands it.
	case a.phase == phaseDraining:
		a.flushed(ctx)
	case a.sess != nil && a.sess.ackDue() && !a.sess.ackTimer.Running():
		a.handToWriter(ctx, nil, 0, 0) // an ACK that waited for the writer
	}
	a.checkFlow(ctx)
}

// wrote settles the batch the writer wrote in full (n bytes): the one place
// where written frames leave the write side. Their bytes leave the queue
// count and their buffers go back to the pool. (An acknowledged protocol
// will keep them here, still counted, until the peer acknowledges them.)
func (w *writeSide) wrote(s *connShared, st *stats, n int) {
	s.queued.Add(-int64(n))
	st.wrote(n, w.inFlightTokens)
	w.writing = false
	outbox.Release(w.inFlight)
	w.keepSpare(w.inFlight)
	w.inFlight, w.inFlightSize, w.inFlightTokens = nil, 0, 0
}

// keepSpare keeps the slice of a batch whose frames went back to the pool
// for the next batch, if it is small and no other is kept.
func (w *writeSide) keepSpare(batch [][]byte) {
	if w.spare == nil && cap(batch) <= maxSpare {
		clear(batch[:cap(batch)])
		w.spare = batch[:0]
	}
}

// checkFlow pauses reading past the high-water mark (or once a Send left
// the queue past it, see connShared.crossed), and resumes it, with a drain
// event, under the low-water mark. It also wakes WaitDrain callers once the
// queue is under the high-water mark.
//
// While paused, the queue holds more than the low-water mark: frames on the
// sends stack or with the writer, whose arrival or write calls checkFlow
// again. A crossing seen when the queue is already under the low-water mark
// is answered by the drain event at once, without pausing.
//
// On token/2 the queue also holds what was written and waits for its ACK,
// which comes on the stream this side would stop reading: reading pauses
// and resumes on the bytes not yet written only, while the drain event and
// WaitDrain go by the whole queue (TOKEN2.md, section 6).
func (a *connActor) checkFlow(ctx actor.Context) {
	w, s := &a.out, a.h.shared
	q := s.queued.Load()
	unwritten := q
	if a.sess != nil {
		unwritten -= a.sess.retainedSize
	}
	crossed := s.crossed.Swap(false)
	if crossed || q > w.hwm {
		w.owed = true
	}
	switch {
	case !w.paused && (unwritten > w.hwm || crossed && unwritten > w.lwm):
		w.paused = true
		s.paused.Store(true)
	case w.paused && unwritten <= w.lwm:
		w.paused = false
		s.paused.Store(false)
		a.resumeReading()
	}
	switch {
	case w.owed && !w.paused && q <= w.lwm:
		w.owed = false
		s.wakeWaiters()
		ctx.Send(a.cfg.owner, connDrained{a.h})
	case q <= w.hwm && s.room.Load() != nil:
		s.wakeWaiters()
	}
}

// closeWriter lets the write pump finish its batch, then end.
func (a *connActor) closeWriter() {
	if a.writer == nil || a.out.writerClosed {
		return
	}
	a.out.writerClosed = true
	a.writer.Close()
}

// onWriteEnded: the write pump has ended, after Close or a failed write.
// What it held and did not write in full is maybe sent, what waited for it
// unsent. After a clean close the write side ends once our side is shut.
func (a *connActor) onWriteEnded(ctx actor.Context, err error) {
	w, s := &a.out, a.h.shared
	if w.writing {
		written := 0
		var we *tlsio.WriteError
		if errors.As(err, &we) {
			written = we.Written
		}
		if a.sess != nil {
			// Maybe written: kept with the rest of what the peer did
			// not acknowledge, for the session's next socket or its end.
			_, tokens := a.codec.WholeFrames(joinFrames(w.inFlight)[:written])
			a.cfg.stats.wrote(written, tokens)
			a.retain()
		} else {
			w.failInFlight(s, a.codec, a.cfg.stats, written)
		}
	}
	if a.phase != phaseSuspended && !(err != nil && a.resumable()) {
		w.unsendQueue(s, a.codec) // a session that breaks keeps its queue
	}
	switch {
	case a.phase == phaseSuspended:
		a.writer = nil
		a.maybeSuspended(ctx)
	case err == nil && a.phase == phaseDraining:
		a.shutWrite(ctx)
	case err != nil && a.phase < phaseClosing:
		a.writer = nil
		if errors.Is(err, tlsio.ErrWriteTimeout) {
			err = fmt.Errorf("%w: %w", ErrSlowConsumer, err)
		} else {
			err = fmt.Errorf("%w: %w", ErrConnection, err)
		}
		if a.resumable() {
			a.breakSession(ctx, err)
			return
		}
		a.die(ctx, err)
	default:
		a.writer = nil
		a.finish(ctx)
	}
}

// joinFrames is the bytes of a batch in one slice.
func joinFrames(batch [][]byte) []byte {
	var all []byte
	for _, b := range batch {
		all = append(all, b...)
	}
	return all
}

// failInFlight settles the writer's batch after a failed write: the frames
// written in full before the failure (written bytes) left, and count as
// sent; the rest may have reached the peer in part, or not.
func (w *writeSide) failInFlight(s *connShared, codec wire.Codec, st *stats, written int) {
	all := joinFrames(w.inFlight)
	written = min(written, len(all))
	if w.big != nil && w.big.flight {
		w.failPiece(s, codec, st, all, written)
		return
	}
	cut, tokens := codec.WholeFrames(all[:written])
	st.wrote(written, tokens)
	w.maybeSent = append(w.maybeSent, all[cut:]...)
	s.queued.Add(-int64(w.inFlightSize))
	w.writing, w.inFlight, w.inFlightSize = false, nil, 0
}

// unsendQueue moves what waits in the outbox to the unsent frames. A token
// going out in pieces is settled whole (dropBig), unless a piece of it is
// with the writer: then once the writer's batch is.
func (w *writeSide) unsendQueue(s *connShared, codec wire.Codec) {
	w.unqueue(s)
	if w.big != nil && !w.big.flight {
		w.dropBig(s, codec)
	}
}

// unqueue moves the frames in the outbox to the unsent ones, but a piece
// waiting there: its frame is settled whole (dropBig).
func (w *writeSide) unqueue(s *connShared) {
	if w.queue.Empty() {
		return
	}
	s.queued.Add(-int64(w.queue.Size()))
	q := w.queue.Flatten()
	if p := w.big; p != nil && p.queued {
		q = q[:p.queuedAt] // the piece is the last segment
		p.queued = false
	}
	w.unsent = append(w.unsent, q...)
}

// takeDropped returns the frames that were maybe sent and those never sent,
// and empties both. Their bytes left the queue count when they became
// maybe sent or unsent: the count is only ever added to and subtracted
// from, never stored, since a handle may add to it at any time.
func (w *writeSide) takeDropped(s *connShared, codec wire.Codec) (maybe, unsent []byte) {
	w.dropBig(s, codec) // the writer has ended: nothing of it is with the writer
	maybe, unsent = w.maybeSent, w.unsent
	w.maybeSent, w.unsent = nil, nil
	return maybe, unsent
}
