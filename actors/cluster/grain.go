package cluster

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/tokenserver/tokenserver/actors/cluster/clusterpb"
)

// Handler is the user's code in a handler grain: one value per activation,
// that is per client identity, called from the grain's goroutine only (never
// concurrently). Tokens of one connection come in order.
type Handler interface {
	// Token handles one token. Replies made with t.Reply reach the client
	// in order, and a batch that is handled again after a failover is
	// answered once: replies travel with the batch's Credit.
	Token(t *Token)
}

// ConnCloser is an optional interface of a Handler: ConnClosed is called
// when a connection of the grain has closed.
type ConnCloser interface {
	ConnClosed(conn string)
}

// HandlerFunc is a Handler made of a function.
type HandlerFunc func(t *Token)

// Token calls f(t).
func (f HandlerFunc) Token(t *Token) { f(t) }

// Token is one token handed to a Handler, and the way to answer it.
type Token struct {
	// Context is the grain's actor context (for its Self, its actor system,
	// its logger...), valid during the call only.
	Context actor.Context
	// Identity is the client's identity (the grain's).
	Identity string
	// Conn identifies the connection in the cluster.
	Conn string
	// Grain is the grain: send it a clusterpb.ReplyBatch or a
	// clusterpb.CloseRequest with Conn to answer later, outside this call.
	// It sends them on to the connection's front, after the replies made
	// before (on token/2, numbered and kept with the session's other
	// replies, and to the session's newest connection).
	Grain *actor.PID
	// Data is the token; it belongs to the handler.
	Data []byte
	// Redelivered: the client sent this token again (token/2: through
	// another front, after the one it had sent it to died without
	// acknowledging it) and this grain has no record of its session that
	// covers it (the record expired, or the grain moved to another node
	// since), so it may have been handled before. A repeat the grain knows
	// of never reaches the Handler.
	Redelivered bool

	credit *clusterpb.Credit
}

// Reply sends data to the client as a token, after the replies made before
// it.
func (t *Token) Reply(data []byte) { t.credit.Replies = append(t.credit.Replies, data) }

// Close closes the connection cleanly once the replies are written.
func (t *Token) Close() { t.credit.Close = true }

// NewKind returns the cluster kind name of handler grains, for
// cluster.WithKinds on the handler nodes (and on no front node): each
// activation gets a Handler from newHandler(identity). The grain processes
// the TokenBatch messages of every connection of its identity, answers each
// with a Credit carrying the replies, and drops batches it has processed
// already (by connection and sequence number), answering them with the
// Credit it gave. On token/2 it also drops the tokens it has handled already
// (by session and number: its client sent them again through another front)
// and delivers each reply of a session once across the fronts (see the
// package doc, Delivery). It keeps what GrainOptions' defaults allow;
// NewKindWithOptions sets other bounds.
func NewKind(name string, newHandler func(identity string) Handler, opts ...actor.PropsOption) *pcluster.Kind {
	return NewKindWithOptions(name, newHandler, GrainOptions{}, opts...)
}

// NewKindWithOptions is NewKind with the bounds of what a grain keeps of
// each token/2 session.
func NewKindWithOptions(name string, newHandler func(identity string) Handler, o GrainOptions, opts ...actor.PropsOption) *pcluster.Kind {
	return pcluster.NewKind(name, grainProps(newHandler, o, opts...))
}

// grainProps are the props of a grain, without the cluster's middleware.
func grainProps(newHandler func(identity string) Handler, o GrainOptions, opts ...actor.PropsOption) *actor.Props {
	o = o.withDefaults()
	return actor.PropsFromProducer(func() actor.Actor {
		return &grain{newHandler: newHandler, o: o, conns: map[string]*gconn{}, sessions: map[string]*gsession{}}
	}, opts...)
}

// grain is the handler grain actor.
type grain struct {
	newHandler func(identity string) Handler
	h          Handler
	identity   string
	o          GrainOptions
	conns      map[string]*gconn
	sessions   map[string]*gsession // token/2 sessions, by TokenBatch.session
	swept      time.Time            // the last sweep of sessions and conns
	out        outbox               // what the message being processed sends
}

// gconn is the grain's state of one connection.
type gconn struct {
	done    uint64                       // highest seq processed
	credits map[uint64]*clusterpb.Credit // sent, not yet known to the front
	seen    time.Time                    // the last batch
	to      *actor.PID                   // its front's router
	session string                       // its token/2 session's key ("" on token/1)
}

// Receive handles one message.
func (g *grain) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *pcluster.ClusterInit:
		g.init(m.Identity.GetIdentity())
	case *clusterpb.TokenBatch:
		now := time.Now()
		g.onBatch(ctx, m, now)
		g.out.flush(ctx, g.identity)
		g.sweep(now)
	case *clusterpb.TokenBatches:
		now := time.Now()
		for _, b := range m.Batches {
			g.onBatch(ctx, b, now)
		}
		g.out.flush(ctx, g.identity)
		g.sweep(now)
	case *clusterpb.ReplyBatch:
		g.later(ctx, m.Conn, m.Tokens, false)
		g.out.flush(ctx, g.identity)
	case *clusterpb.CloseRequest:
		g.later(ctx, m.Conn, nil, true)
		g.out.flush(ctx, g.identity)
	case *clusterpb.ConnClosed:
		g.closed(m.Conn)
		if cc, ok := g.h.(ConnCloser); ok {
			cc.ConnClosed(m.Conn)
		}
	}
}

func (g *grain) init(identity string) {
	if g.h == nil {
		g.identity = identity
		g.h = g.newHandler(identity)
	}
}

// onBatch processes one batch and queues its Credit, unless the batch is
// dropped.
func (g *grain) onBatch(ctx actor.Context, m *clusterpb.TokenBatch, now time.Time) {
	if g.h == nil { // no ClusterInit (not started as a cluster grain)
		g.init(m.Identity)
	}
	gc := g.conns[m.Conn]
	first := gc == nil
	if first { // first batch here: a new connection, or a failover
		gc = &gconn{done: m.Acked, credits: map[uint64]*clusterpb.Credit{}, to: m.ReplyTo, session: string(m.Session)}
		g.conns[m.Conn] = gc
	}
	gc.seen = now
	for seq := range gc.credits {
		if seq <= m.Acked {
			delete(gc.credits, seq)
		}
	}
	switch {
	case m.Seq <= gc.done: // a repeat: answer as the first time
		c := gc.credits[m.Seq]
		if c == nil {
			c = &clusterpb.Credit{Conn: m.Conn, Seq: m.Seq, Identity: g.identity}
		}
		g.out.credit(m.ReplyTo, c)
		return
	case m.Seq > gc.done+1: // one before it is missing: the front sends it again
		ctx.Logger().Warn("token batch out of order: dropped", slog.String("conn", m.Conn),
			slog.Uint64("seq", m.Seq), slog.Uint64("expected", gc.done+1))
		return
	}
	credit := &clusterpb.Credit{Conn: m.Conn, Seq: m.Seq, Identity: g.identity}
	t := &Token{Context: ctx, Identity: g.identity, Conn: m.Conn, Grain: ctx.Self(), credit: credit}
	if len(m.Session) > 0 {
		g.sessionBatch(ctx, m, first, t, now)
	} else {
		for _, data := range m.Tokens {
			t.Data = data
			g.handle(ctx, t)
		}
	}
	gc.done = m.Seq
	gc.credits[m.Seq] = credit
	g.out.credit(m.ReplyTo, credit)
}

// sessionBatch processes a token/2 batch: each number of the session is
// handled once, and the session's replies are numbered, kept, and sent
// through its newest connection; a connection the grain has not seen that
// is newer than the session's gets first the replies its client lacks.
func (g *grain) sessionBatch(ctx actor.Context, m *clusterpb.TokenBatch, first bool, t *Token, now time.Time) {
	s, fresh := g.session(string(m.Session), now)
	if fresh {
		s.sent = m.Written // nothing kept: the numbering goes on from the front's
	}
	s.release(m.Delivered)
	credit := t.credit
	if first && m.Conn != s.conn && (s.conn == "" || m.Received >= s.received) {
		replay, from, lost := s.moveTo(m.Conn, m.ReplyTo, m.Received, m.Written)
		if lost > 0 {
			ctx.Logger().Warn("token/2 replies the client had not received are no longer kept: lost",
				slog.String("identity", g.identity), slog.String("conn", m.Conn), slog.Uint64("replies", lost))
		}
		credit.Replies, credit.ReplyFrom, credit.Close = replay, from, s.closing
	}
	replayed, closed := len(credit.Replies), credit.Close
	repeats := 0
	for i, data := range m.Tokens {
		seq := m.First + uint64(i)
		if m.First != 0 && s.repeat(seq) {
			repeats++
			continue
		}
		// Flagged by the client, and not known here: this grain may have
		// lost the record of having handled it.
		t.Redelivered = m.Redelivered && (fresh || seq < s.from)
		t.Data = data
		g.handle(ctx, t)
		if m.First != 0 {
			s.took(seq)
		}
	}
	if repeats > 0 {
		ctx.Logger().Debug("token/2 repeats dropped", slog.String("conn", m.Conn),
			slog.Int("repeats", repeats), slog.Uint64("first", m.First))
	}
	made := credit.Replies[replayed:]
	closing := credit.Close && !closed
	if s.conn == m.Conn {
		if from := s.number(made, &g.o); replayed == 0 && from != 0 {
			credit.ReplyFrom = from
		}
		s.closing = s.closing || closing
		return
	}
	// An older connection of the session: its replies go to the newest.
	credit.Replies, credit.Close = nil, false
	g.reply(s, made, closing)
}

// later takes what a handler answers outside its call (Token.Grain) for
// conn, and sends it on.
func (g *grain) later(ctx actor.Context, conn string, replies [][]byte, closing bool) {
	gc := g.conns[conn]
	if gc == nil {
		ctx.Logger().Debug("a reply for a connection the grain does not know (closed): dropped",
			slog.String("conn", conn), slog.Int("tokens", len(replies)))
		return
	}
	if s := g.sessions[gc.session]; s != nil {
		g.reply(s, replies, closing)
		return
	}
	// token/1, or a session the grain no longer keeps a record of.
	if len(replies) > 0 {
		g.out.send(gc.to, &clusterpb.ReplyBatch{Conn: conn, Tokens: replies})
	}
	if closing {
		g.out.send(gc.to, &clusterpb.CloseRequest{Conn: conn})
	}
}

// reply numbers and keeps replies of session s, and sends them to its
// newest connection, then the close if closing.
func (g *grain) reply(s *gsession, replies [][]byte, closing bool) {
	from := s.number(replies, &g.o)
	s.closing = s.closing || closing
	if s.conn == "" {
		return // kept for the session's next connection
	}
	if from != 0 {
		g.out.send(s.to, &clusterpb.ReplyBatch{Conn: s.conn, Tokens: replies, ReplyFrom: from})
	}
	if closing {
		g.out.send(s.to, &clusterpb.CloseRequest{Conn: s.conn})
	}
}

// closed forgets connection conn; a session whose newest connection it was
// has none until the next.
func (g *grain) closed(conn string) {
	if gc := g.conns[conn]; gc != nil {
		if s := g.sessions[gc.session]; s != nil && s.conn == conn {
			s.conn, s.to = "", nil
		}
	}
	delete(g.conns, conn)
}

// handle runs the handler on one token; a panic is logged and the token
// counts as handled (the grain and its other connections go on).
func (g *grain) handle(ctx actor.Context, t *Token) {
	defer func() {
		if v := recover(); v != nil {
			ctx.Logger().Error("token handler panicked", slog.String("identity", g.identity),
				slog.String("conn", t.Conn), slog.String("panic", fmt.Sprint(v)))
		}
	}()
	g.h.Token(t)
}
