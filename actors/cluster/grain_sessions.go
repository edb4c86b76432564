package cluster

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tokenserver/tokenserver/actors"
)

// A grain's record of the token/2 sessions of its identity: what it needs to
// handle each token of a session once, and to deliver each of its replies
// once, when the session's client moves from a front to another (the one
// it was on died) and sends again what that front had not acknowledged.
//
// Tokens: per session, the numbers it handled (from the first to the
// highest); a token sent again with one of them is dropped.
//
// Replies: the grain numbers a session's replies in the order its client
// receives them. A front writes nothing on a token/2 connection but the
// grain's replies, in the order the grain sends them, and a front that
// does not know the session numbers its data frames on from what the
// client had received (TOKEN2.md, section 5): the n-th reply the grain
// makes for the session is the client's data frame n, whichever front
// writes it. The grain sends a session's replies through its newest
// connection only (a client may come to another front before the old one
// has seen its socket die: the old one's batches are still handled, and
// their replies go to the new one), and keeps the last ones, which the
// client may not have (a front that dies loses what it had not written, and
// what the client had not read). When the session comes to a connection it
// has not seen, whose batches say what the client had received before it
// (TokenBatch.received and written), the grain sends there the replies
// numbered after that, in order, ahead of anything new, and forgets the
// others. It also forgets those the client has acknowledged: a front
// tells, in each batch, up to which reply the client has acknowledged
// what was written to it (TokenBatch.delivered: the connection had
// nothing queued or unacknowledged when the batch was made).
//
// Bounds: per session, the replies the client has not acknowledged as far
// as the grain knows, and at most MaxKeptReplies replies and MaxKeptBytes
// (the oldest go first: if the client had not received them when its
// front died, they are lost, logged, and the rest are numbered on from
// what it had received); SessionTTL forgets a session that sent nothing
// for that long; MaxSessions bounds the records of one grain (the least
// recently used goes first). A grain keeps at most about MaxSessions times
// (MaxKeptBytes + 300 bytes: the record, its key, its connection's name).

// Defaults of GrainOptions.
const (
	// DefaultSessionTTL is how long a grain keeps the record of a session
	// that sent nothing: a token/2 server's own session timeout, so that a
	// client that comes back through another front within it is handled as
	// one that comes back to the same server.
	DefaultSessionTTL = actors.DefaultSessionTimeout
	// DefaultMaxSessions is the most session records one grain keeps.
	DefaultMaxSessions = 1024
	// DefaultMaxKeptReplies is the most replies of one session a grain
	// keeps.
	DefaultMaxKeptReplies = 4096
	// DefaultMaxKeptBytes bounds the bytes of the replies a grain keeps for
	// one session (each reply counts its length and 32 bytes).
	DefaultMaxKeptBytes = 1 << 20
)

// keptOverhead is what one kept reply costs beyond its bytes, about: its
// slice header and the allocation's rounding.
const keptOverhead = 32

// GrainOptions bound what a grain keeps to handle each token of a token/2
// session once across the front nodes (see NewKindWithOptions). A zero
// field takes its default.
type GrainOptions struct {
	// SessionTTL: a session that sent no token for this long is forgotten
	// (default DefaultSessionTTL): its client's tokens sent again after it
	// are handled again, flagged Token.Redelivered. So is the state of a
	// connection that sent nothing for this long (a front that died never
	// says that its connections closed; a live one that sends again is
	// taken up where its front stands).
	SessionTTL time.Duration
	// MaxSessions is the most sessions one grain keeps a record of
	// (default DefaultMaxSessions); past it, the least recently used is
	// forgotten.
	MaxSessions int
	// MaxKeptReplies and MaxKeptBytes bound the replies kept for one
	// session (defaults DefaultMaxKeptReplies, DefaultMaxKeptBytes; each
	// reply counts its length and 32 bytes): past either, the oldest
	// are forgotten, and if the client had not received them when its front
	// died, they are lost (logged). The grain lets go of a reply as soon as
	// a batch of the session says that the client acknowledged it, so these
	// need only cover what a front holds unwritten or unacknowledged, and
	// what a client that sends no more tokens has not acknowledged yet. A
	// grain keeps at most about MaxSessions times MaxKeptBytes.
	MaxKeptReplies int
	MaxKeptBytes   int
}

func (o GrainOptions) withDefaults() GrainOptions {
	o.SessionTTL = positiveOr(o.SessionTTL, DefaultSessionTTL)
	o.MaxSessions = positiveOr(o.MaxSessions, DefaultMaxSessions)
	o.MaxKeptReplies = positiveOr(o.MaxKeptReplies, DefaultMaxKeptReplies)
	o.MaxKeptBytes = positiveOr(o.MaxKeptBytes, DefaultMaxKeptBytes)
	return o
}

// gsession is a grain's record of one session.
type gsession struct {
	// from and handled: the record knows every number from from to handled
	// (the first it handled and the highest); 0, 0 before the first.
	from, handled uint64
	// conn is the session's newest connection, to; received is its
	// TokenBatch.received. conn is "" before the first and once it closed.
	conn     string
	to       *actor.PID
	received uint64
	// sent is the number of the last reply the grain made; kept are the
	// last of them, numbered sent-len(kept)+1 to sent, the oldest first.
	sent      uint64
	kept      [][]byte
	keptBytes int
	// closing: the handler closed the session's connection; a newer one is
	// closed too, after the replies it is sent.
	closing bool
	seen    time.Time // the last batch
}

// repeat reports whether number seq was handled already.
func (s *gsession) repeat(seq uint64) bool {
	return s.handled != 0 && seq >= s.from && seq <= s.handled
}

// took records that seq was handled.
func (s *gsession) took(seq uint64) {
	switch {
	case s.handled != 0 && seq < s.from:
		// Before what the record knows (it expired, or the grain moved,
		// since): handled, not recorded.
		return
	case s.handled == 0 || seq > s.handled+1:
		// The first, or after a gap: the record starts again at seq, so
		// that a number it never saw is never taken for a repeat.
		s.from = seq
	}
	s.handled = seq
}

// number numbers replies, the session's next, keeps them within the bounds
// of o, and returns the number of the first (0 for none).
func (s *gsession) number(replies [][]byte, o *GrainOptions) uint64 {
	if len(replies) == 0 {
		return 0
	}
	from := s.sent + 1
	s.sent += uint64(len(replies))
	for _, r := range replies {
		s.kept = append(s.kept, r)
		s.keptBytes += len(r) + keptOverhead
	}
	for len(s.kept) > o.MaxKeptReplies || s.keptBytes > o.MaxKeptBytes && len(s.kept) > 1 {
		s.drop(1)
	}
	return from
}

// moveTo makes conn, of front to, the session's newest connection: its
// client had received received replies before it, and its front has been
// handed written. It returns the kept replies numbered after written, and
// the number of the first; lost counts those after written that are no
// longer kept (the numbering then goes on from the client's).
func (s *gsession) moveTo(conn string, to *actor.PID, received, written uint64) (replay [][]byte, from, lost uint64) {
	s.conn, s.to, s.received = conn, to, received
	oldest := s.sent - uint64(len(s.kept)) + 1 // the number of kept[0]
	switch {
	case written >= s.sent:
		s.drop(len(s.kept))
		s.sent = written
		return nil, 0, 0
	case written >= oldest-1:
		s.drop(int(written + 1 - oldest))
	default:
		lost = oldest - written - 1
		s.sent = written + uint64(len(s.kept))
	}
	return append([][]byte(nil), s.kept...), written + 1, lost
}

// release forgets the kept replies numbered up to delivered: the client
// has acknowledged them.
func (s *gsession) release(delivered uint64) {
	oldest := s.sent - uint64(len(s.kept)) + 1 // the number of kept[0]
	if len(s.kept) > 0 && delivered >= oldest {
		s.drop(int(min(delivered-oldest+1, uint64(len(s.kept)))))
	}
}

// drop forgets the n oldest kept replies.
func (s *gsession) drop(n int) {
	for i := range n {
		s.keptBytes -= len(s.kept[i]) + keptOverhead
		s.kept[i] = nil
	}
	s.kept = s.kept[n:]
	if len(s.kept) == 0 {
		s.kept = nil
	}
}

// session returns the record of the session named key, made if need be
// (fresh), and marks it used now.
func (g *grain) session(key string, now time.Time) (s *gsession, fresh bool) {
	s = g.sessions[key]
	if s == nil {
		if len(g.sessions) >= g.o.MaxSessions {
			g.evictOldest()
		}
		s = &gsession{}
		g.sessions[key] = s
		fresh = true
	}
	s.seen = now
	return s, fresh
}

// evictOldest forgets the least recently used session record.
func (g *grain) evictOldest() {
	var oldest string
	var at time.Time
	for k, s := range g.sessions {
		if oldest == "" || s.seen.Before(at) {
			oldest, at = k, s.seen
		}
	}
	delete(g.sessions, oldest)
}

// sweep forgets, once in a while, the sessions and the connections that
// sent nothing for SessionTTL: a front that died never says that its
// connections closed.
func (g *grain) sweep(now time.Time) {
	if now.Sub(g.swept) < g.o.SessionTTL/4 {
		return
	}
	g.swept = now
	for k, s := range g.sessions {
		if now.Sub(s.seen) > g.o.SessionTTL {
			delete(g.sessions, k)
		}
	}
	for k, c := range g.conns {
		if now.Sub(c.seen) > g.o.SessionTTL {
			delete(g.conns, k)
		}
	}
}
