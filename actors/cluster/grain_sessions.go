package cluster

import (
	"time"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/actors/cluster/clusterpb"
)

// A grain's record of the token/2 sessions of its identity: what it needs to
// handle each token of a session once, and to answer a repeat with the
// replies it made the first time, when a session's client sends again,
// through another front, what a front that died had not acknowledged.
//
// Per session it keeps the highest number it handled (a repeat is a number
// at or under it) and the replies of the last tokens it handled, until the
// client is known to have them: the first batch of a connection starts at
// the client's oldest unacknowledged token, and a front writes a token's
// replies before its acknowledgement, so every reply of a token before it
// has reached the client. On a connection that lives on, no such news
// comes: GrainOptions.MaxKeptTokens and MaxKeptBytes bound what is kept (the
// oldest goes first), SessionTTL forgets a session that sent nothing for
// that long, and MaxSessions bounds the records of one grain (the least
// recently used goes first).

// Defaults of GrainOptions.
const (
	// DefaultSessionTTL is how long a grain keeps the record of a session
	// that sent nothing: a token/2 server's own session timeout, so that a
	// client that comes back through another front within it is handled as
	// one that comes back to the same server.
	DefaultSessionTTL = actors.DefaultSessionTimeout
	// DefaultMaxSessions is the most session records one grain keeps.
	DefaultMaxSessions = 1024
	// DefaultMaxKeptTokens is the most tokens of one session whose replies
	// a grain keeps.
	DefaultMaxKeptTokens = 4096
	// DefaultMaxKeptBytes bounds the bytes of the replies a grain keeps for
	// one session (each reply counts its length and keptOverhead).
	DefaultMaxKeptBytes = 1 << 20
)

// keptOverhead is what one kept reply costs beyond its bytes, about: its
// slice header and its share of the entry.
const keptOverhead = 48

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
	// MaxKeptTokens and MaxKeptBytes bound the replies kept for one
	// session (defaults DefaultMaxKeptTokens, DefaultMaxKeptBytes): past
	// either, the oldest are forgotten, and a repeat of their token is
	// dropped without its replies (logged). A grain keeps at most about
	// MaxSessions times MaxKeptBytes.
	MaxKeptTokens int
	MaxKeptBytes  int
}

func (o GrainOptions) withDefaults() GrainOptions {
	o.SessionTTL = positiveOr(o.SessionTTL, DefaultSessionTTL)
	o.MaxSessions = positiveOr(o.MaxSessions, DefaultMaxSessions)
	o.MaxKeptTokens = positiveOr(o.MaxKeptTokens, DefaultMaxKeptTokens)
	o.MaxKeptBytes = positiveOr(o.MaxKeptBytes, DefaultMaxKeptBytes)
	return o
}

// gsession is a grain's record of one session.
type gsession struct {
	// from and handled: the record knows every number from from to handled
	// (the first it handled and the highest); 0, 0 before the first.
	from, handled uint64
	// kept are the replies of handled tokens, by number, the oldest first;
	// every handled number from keptFrom on whose token had replies (or
	// closed the connection) is there.
	kept      []kept
	keptFrom  uint64
	keptBytes int
	seen      time.Time // the last batch
}

// kept is what handling one token answered.
type kept struct {
	seq     uint64
	replies [][]byte
	close   bool
}

// repeat reports whether number seq was handled already.
func (s *gsession) repeat(seq uint64) bool {
	return s.handled != 0 && seq >= s.from && seq <= s.handled
}

// replay appends to credit what handling seq answered, and reports false
// when that is no longer kept.
func (s *gsession) replay(seq uint64, credit *clusterpb.Credit) bool {
	if seq < s.keptFrom {
		return false
	}
	lo, hi := 0, len(s.kept)
	for lo < hi {
		mid := (lo + hi) / 2
		if s.kept[mid].seq < seq {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo < len(s.kept) && s.kept[lo].seq == seq {
		credit.Replies = append(credit.Replies, s.kept[lo].replies...)
		credit.Close = credit.Close || s.kept[lo].close
	}
	return true // a token without an entry had no reply
}

// took records that seq was handled, answering replies (close: it closed
// the connection), within the bounds of o.
func (s *gsession) took(seq uint64, replies [][]byte, close bool, o *GrainOptions) {
	switch {
	case s.handled != 0 && seq < s.from:
		// Before what the record knows (it expired, or the grain moved,
		// since): handled, not recorded.
		return
	case s.handled == 0 || seq > s.handled+1:
		// The first, or after a gap: the record starts again at seq, so
		// that a number it never saw is never taken for a repeat.
		for len(s.kept) > 0 {
			s.drop()
		}
		s.from, s.keptFrom = seq, seq
	}
	s.handled = seq
	if len(replies) == 0 && !close {
		return
	}
	s.kept = append(s.kept, kept{seq: seq, replies: replies, close: close})
	s.keptBytes += keptSize(replies)
	for len(s.kept) > o.MaxKeptTokens || s.keptBytes > o.MaxKeptBytes && len(s.kept) > 1 {
		s.keptFrom = s.kept[0].seq + 1
		s.drop()
	}
}

// acknowledged: the client has every reply of the tokens before first.
func (s *gsession) acknowledged(first uint64) {
	for len(s.kept) > 0 && s.kept[0].seq < first {
		s.drop()
	}
	s.keptFrom = max(s.keptFrom, first)
}

// drop forgets the oldest kept entry.
func (s *gsession) drop() {
	s.keptBytes -= keptSize(s.kept[0].replies)
	s.kept[0] = kept{}
	s.kept = s.kept[1:]
	if len(s.kept) == 0 {
		s.kept = nil
	}
}

func keptSize(replies [][]byte) int {
	n := keptOverhead
	for _, r := range replies {
		n += len(r) + keptOverhead
	}
	return n
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
