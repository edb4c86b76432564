package actors

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tokenserver/tokenserver/actors/internal/framepool"
	"github.com/tokenserver/tokenserver/actors/internal/outbox"
	"github.com/tokenserver/tokenserver/actors/internal/timer"
	"github.com/tokenserver/tokenserver/tlsio"
	"github.com/tokenserver/tokenserver/wire"
)

// The token/2 side of the connection actor (wire/TOKEN2.md; session.go says
// who holds a session). A token/2 connection numbers the data frames of each
// direction, acknowledges the peer's once its handler took them, keeps its
// own until the peer acknowledges them, and ends cleanly by exchanging END.
//
// Numbering: a data frame gets its number when it is handed to the writer
// (nextSeq), so the frames of a batch are numbered in order; the peer counts
// them the same way as it reads them. A written batch stays on the write
// side (retained), still counted in the queue, until an ACK covers its last
// frame.
//
// A server's session outlives its socket: when the socket breaks the actor
// tears down the pumps and, once they have ended, waits without one
// (phaseSuspended) for the next connection of its client, whose socket it
// adopts, or for the server to end the session.

// sessionConfig is what an owner that keeps token/2 sessions tells its
// connection actors.
type sessionConfig struct {
	server  bool
	timeout time.Duration // server: how long a broken session waits
}

// connSession is a token/2 connection's session state.
type connSession struct {
	id     wire.SessionID
	server bool

	// Outbound.
	nextSeq       uint64     // the number of the next data frame handed to the writer
	acked         uint64     // the peer's last ACK
	inFlightFirst uint64     // the number of the first data frame with the writer
	retained      []retained // written (or in a failed write), not all acknowledged
	retainedSize  int64      // their bytes, in the queue count
	unacked       int        // data frames retained (for the end's report)
	last          uint64     // the highest number written, or in a failed write

	// Inbound.
	recv        uint64                          // the number of the last data frame received
	taken       uint64                          // ... of the last one whose token the handler took
	ackSent     uint64                          // the last ACK handed to the writer
	takenBytes  int                             // bytes of tokens taken since that ACK
	ackBuf      [2 + binary.MaxVarintLen64]byte // the ACK frame of the batch with the writer
	ackTimer    timer.Timer
	dueSince    time.Time // when the oldest token not acknowledged was taken
	redelivered uint64    // received frames up to this number are flagged redelivered

	// The clean end (TOKEN2.md, section 7).
	endSent, endRecv bool
	gaveUp           bool // the peer's END or last ACK did not come in time
	endWait          timer.Timer

	// A server's broken session.
	expiry      timer.Timer
	pending     *adopt // a socket handed over while the old one was ending
	closeAsked  bool   // Close was asked while suspended: it drains once resumed
	resumedOnce bool
}

// retained is a written batch with data frames not all acknowledged.
type retained struct {
	frames [][]byte
	first  uint64 // the number of its first data frame
	tokens int
	size   int // its bytes in the queue count
}

// The messages of token/2 sessions, by direction.
type (
	// sessionWanted: a client's connection actor asks its owner for the
	// session before it dials.
	sessionWanted struct{ c *Connection }
	// sessionGiven: the owner's answer: the session (nil for token/1
	// only).
	sessionGiven struct{ state *sessionState }
	// sessionHello: a server's new connection read a HELLO; its owner
	// decides (sessionDecision).
	sessionHello struct {
		c        *Connection
		hello    wire.Hello
		identity string
	}
	// sessionDecision: what the new connection does with its HELLO: open a
	// new session, hand its socket to the actor that holds the session
	// (to), or refuse with reason.
	sessionDecision struct {
		to     *actor.PID
		refuse string
	}
	// adopt hands a socket whose TLS handshake and HELLO are done to the
	// actor that holds the session.
	adopt struct {
		conn  *tls.Conn
		state tls.ConnectionState
		hello wire.Hello
	}
	// supersede: a new connection of the session's client came; the actor
	// that holds it drops its socket (which the client has left).
	supersede struct{}
	// connSuspended: the session's socket broke and its actor waits for the
	// next one.
	connSuspended struct{ c *Connection }
	// connResumed: the session goes on over a new socket.
	connResumed struct{ c *Connection }
	// sessionWaitOver: a suspended session's timeout passed, or Close was
	// asked of it (err nil), or its queue reached its cap: the actor asks
	// its owner to end it, which it does unless a socket is on its way.
	sessionWaitOver struct {
		c   *Connection
		err error
	}
	// sessionEnd: the owner ends a suspended session with err.
	sessionEnd struct{ err error }
)

// errHandedOver ends the read pump of a new connection whose socket goes to
// the actor of its session.
var errHandedOver = errors.New("tokenserver: socket handed to its session")

// errSuperseded is why a session's socket is dropped for a newer one.
var errSuperseded = errors.New("tokenserver: superseded by a new connection of the session's client")

// greetServer runs in the read pump of a server's connection once the TLS
// handshake chose token/2: it reads the client's HELLO (bounded by what is
// left of the handshake timeout), hands it to the actor, and waits for the
// actor's decision: read on (nil), or stop, the socket going elsewhere.
func greetServer(tc *tls.Conn, deadline time.Time, post func(any), st tls.ConnectionState, codec wire.Codec, decide <-chan error) error {
	_ = tc.SetReadDeadline(deadline)
	hello, err := wire.ReadHello(tc)
	_ = tc.SetReadDeadline(time.Time{})
	if err != nil {
		return fmt.Errorf("%w: token/2 HELLO: %w", ErrHandshake, err)
	}
	post(handshakeDone{state: st, codec: codec, hello: &hello})
	select {
	case err := <-decide:
		return err
	case <-time.After(time.Until(deadline)):
		return fmt.Errorf("%w: token/2: no session decision before the handshake timeout: %w",
			ErrHandshake, tlsio.ErrHandshakeTimeout)
	}
}

// greetClient runs on the dial goroutine once the TLS handshake chose
// token/2: it sends HELLO and reads WELCOME, bounded by timeout.
func greetClient(ctx context.Context, tc *tls.Conn, h wire.Hello, timeout time.Duration) (wire.Welcome, error) {
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = tc.SetDeadline(deadline)
	defer tc.SetDeadline(time.Time{})
	if _, err := tc.Write(wire.AppendHello(nil, h)); err != nil {
		return wire.Welcome{}, fmt.Errorf("token/2 HELLO: %w", err)
	}
	w, err := wire.ReadWelcome(tc)
	if errors.Is(err, wire.ErrRefused) {
		return w, fmt.Errorf("%w: %w", ErrSessionRefused, err)
	}
	if err != nil {
		return w, fmt.Errorf("token/2 WELCOME: %w", err)
	}
	return w, nil
}

// clientSession is a client connection's session once WELCOME came, from
// the state its owner gave: resumed, the frames the server has are dropped;
// new (the server does not know the session), all are sent again. Either
// way the numbering of the server's frames goes on from what the client
// received.
func clientSession(st *sessionState, w wire.Welcome) (*connSession, []byte) {
	s := &connSession{id: st.id, recv: st.recv}
	frames := st.frames
	if w.Status == wire.SessionResumed && w.Recv >= st.first {
		frames = skipFrames(frames, w.Recv-st.first+1)
		s.nextSeq = w.Recv + 1
	} else {
		s.nextSeq = st.first
	}
	s.acked = s.nextSeq - 1
	s.taken, s.ackSent, s.last = s.recv, s.recv, st.last
	return s, frames
}

// newServerSession is a new session on a server, opened by hello. Its data
// frames go on from the client's numbering of what it received (TOKEN2.md,
// section 5).
func newServerSession(hello wire.Hello) *connSession {
	s := &connSession{id: hello.Session, server: true, nextSeq: hello.Recv + 1, acked: hello.Recv, last: hello.Recv}
	s.recv = hello.First - 1
	s.taken, s.ackSent = s.recv, s.recv
	if hello.Last >= hello.First {
		s.redelivered = hello.Last
	}
	return s
}

// onHello: a server's new connection read a HELLO; its owner decides.
func (a *connActor) onHello(ctx actor.Context, m handshakeDone) {
	a.phase = phaseGreeting
	a.hello = *m.hello
	ctx.Send(a.cfg.owner, sessionHello{c: a.h, hello: a.hello, identity: sessionIdentity(m.state)})
}

// onDecision takes the owner's decision on the HELLO.
func (a *connActor) onDecision(ctx actor.Context, m sessionDecision) {
	if a.phase != phaseGreeting {
		return // it ended meanwhile; its connDown tells the owner
	}
	switch {
	case m.refuse != "":
		a.decide(nil) // read on, to see the client's end
		a.refuse(ctx, m.refuse)
	case m.to != nil:
		a.handTo = m.to
		a.decide(errHandedOver) // the reader ends; then the socket goes
	default:
		a.decide(nil)
		a.sess = newServerSession(a.hello)
		a.h.peerReceived.Store(a.hello.Recv)
		a.open(ctx, wire.Token2, nil)
	}
}

// decide hands the read pump's greeting its outcome, once.
func (a *connActor) decide(err error) {
	if a.greet != nil {
		a.greet <- err
		a.greet = nil
	}
}

// refuse answers a HELLO with CLOSE and the reason, and fails the
// connection.
func (a *connActor) refuse(ctx actor.Context, reason string) {
	a.fault(fmt.Errorf("%w: %s", ErrSessionRefused, reason))
	a.startWriter(ctx)
	a.phase = phaseDraining
	a.closeGate(ctx)
	frame, _ := wire.Token2.AppendControl(nil, wire.Frame{Kind: wire.KindRemoteClose, Token: []byte(reason)})
	if a.handToWriter(ctx, [][]byte{frame}, 0, 0) {
		a.closeWriter()
	}
}

// handOver: the reader of a connection whose socket goes to its session has
// ended; the socket goes, and this actor ends without a word to the user.
func (a *connActor) handOver(ctx actor.Context) {
	st, _ := a.h.TLSState()
	ctx.Send(a.handTo, adopt{conn: a.conn.(*tls.Conn), state: st, hello: a.hello})
	a.conn = nil
	a.handedOver = true
	a.phase = phaseClosing
	a.closeGate(ctx)
	a.finish(ctx)
}

// resumable reports whether an end of the socket that is not clean (an
// error, an end of stream before END) leaves the session to go on: on a
// token/2 connection that is open and has not begun its clean end.
func (a *connActor) resumable() bool {
	return a.sess != nil && a.phase == phaseOpen && !a.sess.endSent && !a.sess.endRecv && a.end.err == nil
}

// breakSession: the socket of a token/2 connection broke (a reset, an end
// of stream before END, a write that failed or timed out), or a newer
// connection of its client superseded it. A client's connection ends, and
// its session goes back to the client actor, which connects again; a
// server's session lives on without a socket.
func (a *connActor) breakSession(ctx actor.Context, err error) {
	if !a.sess.server {
		a.end.resumable = true
		a.die(ctx, err)
		return
	}
	a.cfg.log.Debug("session socket broke", "conn", a.h.id, "remote", a.h.RemoteAddr(), "err", err)
	a.phase = phaseSuspended
	a.in.creditWait.Stop()
	a.sess.ackTimer.Stop()
	a.dropIO() // a server's connection has no dial
	a.maybeSuspended(ctx)
}

// maybeSuspended completes a break once both pumps have ended: what the
// writer held is kept to be written again, and the owner learns that the
// session waits (or the socket handed over meanwhile is adopted at once).
func (a *connActor) maybeSuspended(ctx actor.Context) {
	if a.phase != phaseSuspended || a.reader != nil || a.writer != nil || a.conn == nil {
		return
	}
	a.conn = nil
	a.out.writerClosed = false
	a.in.readOver, a.in.owed = false, 0
	if p := a.sess.pending; p != nil {
		a.sess.pending = nil
		a.resume(ctx, *p)
		return
	}
	a.sess.expiry.Start(ctx, a.cfg.sessions.timeout)
	ctx.Send(a.cfg.owner, connSuspended{a.h})
}

// onAdopt: the session's client came back; its new socket comes with its
// HELLO.
func (a *connActor) onAdopt(ctx actor.Context, m adopt) {
	switch {
	case a.phase == phaseSuspended && a.conn == nil:
		a.resume(ctx, m)
	case a.phase == phaseSuspended || a.phase == phaseOpen:
		// The old socket is still being torn down.
		a.sess.pending = &m
		if a.phase == phaseOpen {
			a.breakSession(ctx, errSuperseded)
		}
	default: // it ended meanwhile: the owner does not hand sockets to those
		_ = m.conn.Close()
	}
}

// resume takes over the new socket: WELCOME, the frames the client has not
// got, then the queue.
func (a *connActor) resume(ctx actor.Context, m adopt) {
	s := a.sess
	s.expiry.Stop()
	h := m.hello
	if h.Recv < s.acked || h.Recv >= s.nextSeq || h.First > s.recv+1 {
		_ = m.conn.Close()
		a.die(ctx, fmt.Errorf("%w: token/2 HELLO does not fit the session: client received %d, first %d; server sent %d, acknowledged %d, received %d",
			ErrProtocol, h.Recv, h.First, s.nextSeq-1, s.acked, s.recv))
		return
	}
	a.conn = m.conn
	a.h.setAddrs(m.conn)
	a.h.tls.Store(&m.state)
	a.dec, _ = wire.Token2.NewDecoder(a.cfg.limits.MaxTokenSize) // the old one may be inside a frame
	a.lendSpans()
	a.onAcked(h.Recv) // the client has them all
	resend, n := a.rewind(h.Recv)
	s.resumedOnce = true
	a.phase = phaseOpen
	a.startReader(ctx, nil)
	a.startWriter(ctx)
	a.cfg.stats.sessionResumed()
	ctx.Send(a.cfg.owner, connResumed{a.h})
	a.writeGreeting(ctx, wire.Welcome{Status: wire.SessionResumed, Recv: s.recv}, resend, n)
	if s.closeAsked {
		a.drain(ctx)
	}
}

// rewind returns what was retained (written, not acknowledged) as the
// frames to write again, numbered from recv+1, ahead of the queue, and
// their number of tokens.
func (a *connActor) rewind(recv uint64) ([]byte, int) {
	s := a.sess
	var frames []byte
	for _, r := range s.retained {
		for _, b := range r.frames {
			frames, _ = dataFrames(frames, b)
		}
		outbox.Release(r.frames)
	}
	if len(s.retained) > 0 && s.retained[0].first <= recv {
		// The first batch's frames up to recv arrived.
		frames = skipFrames(frames, recv-s.retained[0].first+1)
	}
	_, n := dataFrames(nil, frames)
	s.retained, s.unacked = nil, 0
	// The bytes of the batches are in the queue count; the frames to write
	// again are counted instead.
	a.h.shared.queued.Add(int64(len(frames)) - s.retainedSize)
	s.retainedSize = 0
	s.nextSeq = recv + 1
	return frames, n
}

// writeGreeting opens a server's session on its socket: WELCOME first, the
// frames to write again (resend, of resendTokens tokens: a resumed
// session's), then the queue.
func (a *connActor) writeGreeting(ctx actor.Context, w wire.Welcome, resend []byte, resendTokens int) {
	batch := [][]byte{wire.AppendWelcome(nil, w)}
	size, tokens := 0, 0
	if len(resend) > 0 {
		size, tokens = len(resend), resendTokens
		batch = append(batch, resend)
		a.cfg.stats.resent(tokens)
	}
	if !a.out.queue.Empty() {
		size += a.out.queue.Size()
		tokens += a.out.queue.Tokens()
		batch = append(batch, a.out.queue.Take()...)
	}
	a.handToWriterExtra(ctx, batch, size, tokens, len(batch[0]))
}

// onSessionTimer: a suspended session's timeout passed. The owner ends the
// session, unless a socket is on its way to it: then the timer runs again,
// should that socket never come.
func (a *connActor) onSessionTimer(ctx actor.Context) {
	if a.phase == phaseSuspended {
		ctx.Send(a.cfg.owner, sessionWaitOver{a.h, ErrSessionExpired})
		a.sess.expiry.Start(ctx, a.cfg.sessions.timeout)
	}
}

// waitOver asks the owner to end a suspended session (Close asked, queue
// full): only the owner knows whether a socket is on its way to it.
func (a *connActor) waitOver(ctx actor.Context, err error) {
	if err == nil {
		a.sess.closeAsked = true
	}
	ctx.Send(a.cfg.owner, sessionWaitOver{a.h, err})
}

// onSessionEnd: the owner ends a suspended session.
func (a *connActor) onSessionEnd(ctx actor.Context, err error) {
	if a.phase != phaseSuspended {
		return
	}
	a.sess.expiry.Stop()
	a.end.asked = err == nil
	if errors.Is(err, ErrSessionExpired) {
		a.end.dropReason = err
		a.cfg.stats.sessionExpired()
	}
	a.die(ctx, err)
}

// The numbering and the acknowledgements.

// numberBatch numbers the data frames of a batch handed to the writer.
func (s *connSession) numberBatch(tokens int) {
	s.inFlightFirst = s.nextSeq
	s.nextSeq += uint64(tokens)
	if tokens > 0 {
		s.last = max(s.last, s.nextSeq-1)
	}
}

// retain keeps the writer's batch (written, or in a write that failed) until
// the peer acknowledges its data frames; it stays in the queue count.
func (a *connActor) retain() {
	w, s := &a.out, a.sess
	if n := len(w.inFlight); n > 0 && s.carriesAck(w.inFlight[n-1]) {
		// The ACK is written (or never will be): ackBuf is for the next.
		w.inFlight[n-1] = nil
		w.inFlight = w.inFlight[:n-1]
	}
	if w.inFlightTokens > 0 {
		compact(w.inFlight)
		s.retained = append(s.retained, retained{frames: w.inFlight, first: s.inFlightFirst,
			tokens: w.inFlightTokens, size: w.inFlightSize})
		s.retainedSize += int64(w.inFlightSize)
		s.unacked += w.inFlightTokens
	} else { // control frames only: nothing to keep
		a.h.shared.queued.Add(-int64(w.inFlightSize))
		outbox.Release(w.inFlight)
	}
	w.writing, w.inFlight, w.inFlightSize, w.inFlightTokens, w.inFlightExtra = false, nil, 0, 0, 0
}

// compact copies the segments of a batch that fill less than half their
// buffer into buffers of their size, and gives the buffers back: a batch
// kept until its ACK comes must not hold a 64 KiB gathering buffer for a few
// bytes, or a peer that reads and never acknowledges would make the queue's
// bytes count a small part of the memory held.
func compact(batch [][]byte) {
	for i, seg := range batch {
		if cap(seg) > 2*len(seg) && cap(seg) >= compactAbove {
			batch[i] = append(make([]byte, 0, len(seg)), seg...)
			framepool.Put(seg)
		}
	}
}

// compactAbove: buffers smaller than this are kept as they are.
const compactAbove = 4 << 10

// onAck takes the peer's ACK of every data frame up to v.
func (a *connActor) onAck(ctx actor.Context, v uint64) error {
	s := a.sess
	if v < s.acked || v >= s.nextSeq {
		return fmt.Errorf("%w: token/2 ACK %d: acknowledged %d before, %d sent", ErrProtocol, v, s.acked, s.nextSeq-1)
	}
	a.cfg.stats.ackReceived()
	a.onAcked(v)
	a.checkFlow(ctx)
	if a.phase == phaseDraining {
		a.flushed(ctx)
	}
	return nil
}

// onAcked lets go of the retained batches whose frames are all acknowledged.
func (a *connActor) onAcked(v uint64) {
	s := a.sess
	s.acked = max(s.acked, v)
	i := 0
	for ; i < len(s.retained); i++ {
		r := s.retained[i]
		if r.first+uint64(r.tokens)-1 > s.acked {
			break
		}
		s.retainedSize -= int64(r.size)
		s.unacked -= r.tokens
		a.h.shared.queued.Add(-int64(r.size))
		outbox.Release(r.frames)
		a.out.keepSpare(r.frames)
	}
	if i > 0 {
		s.retained = append(s.retained[:0], s.retained[i:]...)
	}
}

// took: the handler took the tokens of a delivered chunk, tokens of them,
// bytes long. An ACK follows at once past the thresholds, else with the
// next write or when the ack timer fires, at most ackDelay from now.
func (a *connActor) took(ctx actor.Context, tokens, bytes int) {
	s := a.sess
	if !s.ackDue() { // settle calls with tokens > 0 only
		s.dueSince = time.Now()
	}
	s.taken += uint64(tokens)
	s.takenBytes += bytes
	if s.taken == s.ackSent {
		return
	}
	if s.taken-s.ackSent >= ackEveryTokens || s.takenBytes >= ackEveryBytes {
		a.sendAck(ctx)
	} else if !s.ackTimer.Running() {
		s.ackTimer.Start(ctx, ackDelay)
	}
}

// onAckTimer: the ack timer fired. Writes carried every ACK since it
// started (nothing is due), or what is due was taken less than ackDelay
// ago (a write carried the earlier ACKs: on round trips, each reply carries
// the ACK of the requests taken before it, and the last request's is due
// when the timer fires), and the timer waits for the rest of its delay; or
// an ACK is written now.
func (a *connActor) onAckTimer(ctx actor.Context) {
	s := a.sess
	if !s.ackDue() {
		return
	}
	if wait := ackDelay - time.Since(s.dueSince); wait > 0 {
		s.ackTimer.Start(ctx, wait)
		return
	}
	a.sendAck(ctx)
}

// sendAck writes an ACK now, or with the batch after the writer's.
func (a *connActor) sendAck(ctx actor.Context) {
	s := a.sess
	s.ackTimer.Stop()
	if s.taken == s.ackSent || a.phase != phaseOpen && a.phase != phaseDraining || a.out.writerClosed {
		return
	}
	if !a.out.writing {
		a.handToWriter(ctx, nil, 0, 0) // the ACK goes with it
	} // else the next batch carries it (onWritten hands an empty one)
}

// ackDue reports whether an ACK waits for a batch.
func (s *connSession) ackDue() bool { return s.taken > s.ackSent }

// ackFrame is the ACK of everything taken so far, which the batch handed
// to the writer carries as its last segment. It is written in the
// session's ackBuf, which retain takes out of the batch once the writer is
// done with it: one buffer does, as the writer holds one batch at a time.
// The ack timer runs on: stopping and starting it for every batch cost a
// timer and a message per token on round trips.
func (a *connActor) ackFrame() []byte {
	s := a.sess
	s.ackSent, s.takenBytes = s.taken, 0
	a.cfg.stats.ackSent()
	return wire.AppendAck(s.ackBuf[:0], s.taken)
}

// carriesAck reports whether seg is the session's ackBuf (a batch's ACK).
func (s *connSession) carriesAck(seg []byte) bool {
	return len(seg) > 0 && &seg[0] == &s.ackBuf[0]
}

// The clean end (TOKEN2.md, section 7).

// flushed: a draining connection wrote everything queued. token/1 shuts
// its side now; token/2 first sends END, then waits until the peer's END
// came, everything it sent was acknowledged and its last ACK is written.
func (a *connActor) flushed(ctx actor.Context) {
	s := a.sess
	if s == nil || a.end.err != nil {
		a.closeWriter()
		return
	}
	if a.out.writing || a.out.writerClosed {
		return
	}
	switch {
	case s.gaveUp:
		a.closeWriter()
	case !s.endSent:
		s.endSent = true
		if !s.endWait.Running() {
			s.endWait.Start(ctx, a.cfg.limits.CloseTimeout)
		}
		end := wire.AppendEnd(nil)
		a.handToWriterExtra(ctx, [][]byte{end}, 0, 0, len(end))
	case s.endRecv && s.unacked == 0 && len(a.in.debts) == 0 && !s.ackDue():
		s.endWait.Stop()
		a.closeWriter()
	case s.endRecv && len(a.in.debts) == 0 && s.ackDue():
		a.sendAck(ctx)
	}
}

// onEndWait: the peer's END or its last ACK did not come within the close
// timeout: shut our side anyway; what it did not acknowledge is reported.
func (a *connActor) onEndWait(ctx actor.Context) {
	if a.phase == phaseDraining && !a.out.writerClosed {
		a.sess.gaveUp = true
		a.flushed(ctx) // at once, or when the writer's batch is written
	}
}

// onEnd: the peer sends no more data: once its handler took what came, this
// side ends too (as a token/1 connection does at the end of the stream), and
// the reader goes on, for the ACKs.
func (a *connActor) onEnd(ctx actor.Context) {
	a.sess.endRecv = true
	switch a.phase {
	case phaseOpen:
		a.endReading(ctx)
	case phaseDraining:
		a.flushed(ctx)
	}
}

// The session's end.

// sessionOut takes everything of the session that was not acknowledged, in
// order, for the owner: a client's to send again over its next connection,
// or a server's, whose session ended, to report. Their bytes leave the
// queue count.
func (a *connActor) sessionOut() *sessionState {
	s, w := a.sess, &a.out
	st := &sessionState{id: s.id, first: s.acked + 1, last: s.last, recv: s.recv}
	if a.out.writing {
		a.retain() // a writer stopped from outside: maybe written
	}
	for _, r := range s.retained {
		for _, b := range r.frames {
			st.frames, _ = dataFrames(st.frames, b)
		}
		outbox.Release(r.frames)
	}
	st.frames = skipFrames(st.frames, s.acked+1-min(s.acked+1, s.retainedFirst()))
	a.h.shared.queued.Add(-s.retainedSize)
	s.retained, s.retainedSize, s.unacked = nil, 0, 0
	if !w.queue.Empty() {
		a.h.shared.queued.Add(-int64(w.queue.Size()))
		st.frames, _ = dataFrames(st.frames, w.queue.Flatten())
	}
	st.frames, _ = dataFrames(st.frames, w.maybeSent)
	st.frames, _ = dataFrames(st.frames, w.unsent)
	w.maybeSent, w.unsent = nil, nil
	_, st.tokens = dataFrames(nil, st.frames)
	return st
}

// retainedFirst is the number of the first retained data frame, or the next
// one to send.
func (s *connSession) retainedFirst() uint64 {
	if len(s.retained) > 0 {
		return s.retained[0].first
	}
	return s.nextSeq
}
