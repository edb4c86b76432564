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
	// ReplyTo is the front's router: send it a clusterpb.ReplyBatch or a
	// clusterpb.CloseRequest with Conn to answer later, outside this call.
	ReplyTo *actor.PID
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
// and answers them with the replies it made then. It keeps what GrainOptions'
// defaults allow; NewKindWithOptions sets other bounds.
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
}

// gconn is the grain's state of one connection.
type gconn struct {
	done    uint64                       // highest seq processed
	credits map[uint64]*clusterpb.Credit // sent, not yet known to the front
	seen    time.Time                    // the last batch
}

// Receive handles one message.
func (g *grain) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *pcluster.ClusterInit:
		g.init(m.Identity.GetIdentity())
	case *clusterpb.TokenBatch:
		now := time.Now()
		if c := g.onBatch(ctx, m, now); c != nil {
			ctx.Send(m.ReplyTo, c)
		}
		g.sweep(now)
	case *clusterpb.TokenBatches:
		now := time.Now()
		g.onBatches(ctx, m, now)
		g.sweep(now)
	case *clusterpb.ConnClosed:
		delete(g.conns, m.Conn)
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

// onBatches answers the batches with one Credits per reply_to (one, from
// one front).
func (g *grain) onBatches(ctx actor.Context, m *clusterpb.TokenBatches, now time.Time) {
	var to *actor.PID
	var out *clusterpb.Credits
	for _, b := range m.Batches {
		c := g.onBatch(ctx, b, now)
		if c == nil {
			continue
		}
		if out != nil && !b.ReplyTo.Equal(to) {
			ctx.Send(to, out)
			out = nil
		}
		if out == nil {
			to, out = b.ReplyTo, &clusterpb.Credits{Identity: g.identity}
		}
		out.Credits = append(out.Credits, c)
	}
	if out != nil {
		ctx.Send(to, out)
	}
}

// onBatch processes one batch and returns its Credit, or nil when the batch
// is dropped.
func (g *grain) onBatch(ctx actor.Context, m *clusterpb.TokenBatch, now time.Time) *clusterpb.Credit {
	if g.h == nil { // no ClusterInit (not started as a cluster grain)
		g.init(m.Identity)
	}
	gc := g.conns[m.Conn]
	if gc == nil { // first batch here: a new connection, or a failover
		gc = &gconn{done: m.Acked, credits: map[uint64]*clusterpb.Credit{}}
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
		if c := gc.credits[m.Seq]; c != nil {
			return c
		}
		return &clusterpb.Credit{Conn: m.Conn, Seq: m.Seq, Identity: g.identity}
	case m.Seq > gc.done+1: // one before it is missing: the front sends it again
		ctx.Logger().Warn("token batch out of order: dropped", slog.String("conn", m.Conn),
			slog.Uint64("seq", m.Seq), slog.Uint64("expected", gc.done+1))
		return nil
	}
	credit := &clusterpb.Credit{Conn: m.Conn, Seq: m.Seq, Identity: g.identity}
	t := &Token{Context: ctx, Identity: g.identity, Conn: m.Conn, ReplyTo: m.ReplyTo, credit: credit}
	if len(m.Session) > 0 && m.First > 0 {
		g.sessionBatch(ctx, m, t, now)
	} else {
		for _, data := range m.Tokens {
			t.Data = data
			g.handle(ctx, t)
		}
	}
	gc.done = m.Seq
	gc.credits[m.Seq] = credit
	return credit
}

// sessionBatch processes the tokens of a token/2 batch: each number of the
// session is handled once; a repeat is answered with the replies it had.
func (g *grain) sessionBatch(ctx actor.Context, m *clusterpb.TokenBatch, t *Token, now time.Time) {
	s, fresh := g.session(string(m.Session), now)
	if m.Seq == 1 {
		// A connection's first batch starts at its client's oldest token
		// not acknowledged: the client has every reply before it.
		s.acknowledged(m.First)
	}
	credit := t.credit
	repeats, unkept := 0, 0
	for i, data := range m.Tokens {
		seq := m.First + uint64(i)
		if s.repeat(seq) {
			repeats++
			if !s.replay(seq, credit) {
				unkept++
			}
			continue
		}
		// Flagged by the client, and not known here: this grain may have
		// lost the record of having handled it.
		t.Redelivered = m.Redelivered && (fresh || seq < s.from)
		start, closed := len(credit.Replies), credit.Close
		t.Data = data
		g.handle(ctx, t)
		s.took(seq, credit.Replies[start:len(credit.Replies):len(credit.Replies)], credit.Close && !closed, &g.o)
	}
	if repeats > 0 {
		ctx.Logger().Debug("token/2 repeats dropped", slog.String("conn", m.Conn),
			slog.Int("repeats", repeats), slog.Uint64("first", m.First))
	}
	if unkept > 0 {
		ctx.Logger().Warn("token/2 repeats whose replies are no longer kept: dropped without them",
			slog.String("identity", g.identity), slog.String("conn", m.Conn), slog.Int("tokens", unkept))
	}
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
