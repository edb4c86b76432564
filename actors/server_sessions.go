package actors

import (
	"github.com/asynkron/protoactor-go/actor"
	"github.com/tokenserver/tokenserver/wire"
)

// The server's token/2 sessions (wire/TOKEN2.md, section 5): which
// connection actor holds each, bound to the identity of the client that
// opened it. The server actor decides every HELLO: a new session, the
// session's actor takes the new socket (at once when it waits without one,
// after its old socket is dropped when it still has one), or a refusal when
// the HELLO names another client's session. It also decides every end of a
// session that waits without a socket, so that it never ends one whose
// client is on its way back.

// sessionEntry is one session of the server.
type sessionEntry struct {
	c         *Connection // its handle; its actor holds the session
	identity  string
	suspended bool          // its actor waits without a socket
	waiting   *sessionHello // a new connection that waits for the old socket to go
	handingTo *Connection   // the new connection told to hand its socket over
}

// sessionsOf is the server actor's table of sessions.
type sessionsOf struct {
	byID   map[wire.SessionID]*sessionEntry
	byConn map[*Connection]wire.SessionID
	// greeters: the new connections a session waits for (waiting,
	// handingTo).
	greeters map[*Connection]wire.SessionID
}

func newSessions() sessionsOf {
	return sessionsOf{byID: map[wire.SessionID]*sessionEntry{}, byConn: map[*Connection]wire.SessionID{},
		greeters: map[*Connection]wire.SessionID{}}
}

// of returns the session c holds, if any.
func (t *sessionsOf) of(c *Connection) *sessionEntry {
	if id, ok := t.byConn[c]; ok {
		return t.byID[id]
	}
	return nil
}

func (t *sessionsOf) add(m sessionHello) {
	t.byID[m.hello.Session] = &sessionEntry{c: m.c, identity: m.identity}
	t.byConn[m.c] = m.hello.Session
}

func (t *sessionsOf) remove(c *Connection) {
	if id, ok := t.byConn[c]; ok {
		delete(t.byConn, c)
		delete(t.byID, id)
	}
}

// onSessionHello decides what a new connection's HELLO opens.
func (a *serverActor) onSessionHello(ctx actor.Context, m sessionHello) {
	s := a.sessions.byID[m.hello.Session]
	switch {
	case a.closing:
		ctx.Send(m.c.PID(), sessionDecision{refuse: "the server is closing"})
	case s == nil:
		a.sessions.add(m)
		ctx.Send(m.c.PID(), sessionDecision{})
	case s.identity != m.identity:
		a.log.Warn("token/2 session refused: it belongs to another client", "remote", m.c.RemoteAddr())
		ctx.Send(m.c.PID(), sessionDecision{refuse: "the session belongs to another client"})
	case s.suspended:
		a.resumeSession(ctx, s, m)
	default:
		// Its actor still has a socket, which its client has left (a NAT
		// or a proxy dropped it without a word): it drops it, and the new
		// one goes to it once it waits (connSuspended). Or its actor is
		// about to get the socket of another new connection (handingTo):
		// it drops that one once it has it (connResumed), or, should that
		// connection die first, it gets this one (greetingGone).
		if s.waiting != nil {
			delete(a.sessions.greeters, s.waiting.c)
			ctx.Send(s.waiting.c.PID(), sessionDecision{refuse: "superseded by a newer connection"})
		}
		s.waiting = &m
		a.sessions.greeters[m.c] = m.hello.Session
		if s.handingTo == nil {
			ctx.Send(s.c.PID(), supersede{})
		}
	}
}

// resumeSession hands the new connection's socket to the session's actor.
// The new connection never was open: it leaves the admission's pending
// sockets, and its handle goes unused.
func (a *serverActor) resumeSession(ctx actor.Context, s *sessionEntry, m sessionHello) {
	a.setSuspended(s, false)
	s.waiting, s.handingTo = nil, m.c
	a.sessions.greeters[m.c] = m.hello.Session
	ctx.Send(m.c.PID(), sessionDecision{to: s.c.PID()})
}

// onConnResumed: a session's actor took its new socket. A newer
// connection that came meanwhile supersedes it.
func (a *serverActor) onConnResumed(ctx actor.Context, c *Connection) {
	if s := a.sessions.of(c); s != nil && s.handingTo != nil {
		delete(a.sessions.greeters, s.handingTo)
		s.handingTo = nil
		if s.waiting != nil {
			ctx.Send(s.c.PID(), supersede{})
		}
	}
}

// greetingGone: a new connection ended in its greeting (c never opened):
// a session that waited for it, or was to get its socket, waits on, or
// gets the socket of a newer connection that waited meanwhile.
func (a *serverActor) greetingGone(ctx actor.Context, c *Connection) {
	id, ok := a.sessions.greeters[c]
	if !ok {
		return
	}
	delete(a.sessions.greeters, c)
	s := a.sessions.byID[id]
	switch {
	case s == nil:
	case s.waiting != nil && s.waiting.c == c:
		s.waiting = nil
	case s.handingTo == c && s.waiting != nil:
		s.handingTo = nil
		a.resumeSession(ctx, s, *s.waiting)
	case s.handingTo == c:
		s.handingTo = nil
		a.setSuspended(s, true)
	}
}

// onConnSuspended: a session's socket broke and its actor waits.
func (a *serverActor) onConnSuspended(ctx actor.Context, c *Connection) {
	s := a.sessions.of(c)
	if s == nil {
		return
	}
	if s.waiting != nil {
		a.resumeSession(ctx, s, *s.waiting)
		return
	}
	a.setSuspended(s, true)
	if a.closing {
		ctx.Send(c.PID(), sessionEnd{})
	}
}

// setSuspended marks whether s waits for its client, and counts it.
func (a *serverActor) setSuspended(s *sessionEntry, on bool) {
	if s.suspended == on {
		return
	}
	s.suspended = on
	if on {
		a.s.stats.sessionsWaiting.Add(1)
	} else {
		a.s.stats.sessionsWaiting.Add(-1)
	}
}

// onSessionWaitOver: a waiting session's actor asks to end it (its timeout,
// its Close, its queue full). It ends unless a new socket is on its way.
func (a *serverActor) onSessionWaitOver(ctx actor.Context, m sessionWaitOver) {
	if m.c == nil { // a new connection that was to resume ended first
		return
	}
	if s := a.sessions.of(m.c); s != nil && s.suspended {
		ctx.Send(m.c.PID(), sessionEnd{err: m.err})
	}
}

// sessionDown: a connection that held a session ended for good; a new
// connection that waited for its socket opens a new session instead.
func (a *serverActor) sessionDown(ctx actor.Context, c *Connection) {
	s := a.sessions.of(c)
	if s == nil {
		return
	}
	a.setSuspended(s, false)
	a.sessions.remove(c)
	if s.handingTo != nil { // its socket went to an actor that had ended
		delete(a.sessions.greeters, s.handingTo)
	}
	if w := s.waiting; w != nil {
		delete(a.sessions.greeters, w.c)
		a.sessions.add(*w)
		ctx.Send(w.c.PID(), sessionDecision{})
	}
}

// endSuspendedSessions: the server closes: the sessions that wait for their
// clients end now.
func (a *serverActor) endSuspendedSessions(ctx actor.Context) {
	for _, s := range a.sessions.byID {
		if s.suspended {
			ctx.Send(s.c.PID(), sessionEnd{})
		}
	}
}
