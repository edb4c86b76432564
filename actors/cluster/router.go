package cluster

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/actors/cluster/clusterpb"
)

// The router is a front node's handler PID: it receives the events of every
// connection of the server (actors.ServerOptions.Handler), batches each
// connection's tokens into TokenBatch messages for the connection's grain,
// and turns what grains answer (Credit, ReplyBatch, CloseRequest) into
// writes, local actors.Credit and closes on the connection. It keeps every
// batch until its Credit comes, and sends it again to the grain's new
// activation when the grain was lost. Lookups run on goroutines of their
// own (Proto.Actor's cluster lookups block) and post their result here.
//
// It writes nothing on a connection but the grain's replies (and closes),
// so that on token/2 the grain's numbering of a session's replies is the
// client's: a token/2 connection's first batch, without tokens, tells the
// grain where the client's numbering stands (TokenBatch.received, written),
// and the router writes each number the grain gives once.

// Messages to the router from outside the actor.
type (
	// connOpened: a new connection and its identity (or why it has none);
	// on token/2, its session's key and Connection.PeerReceived.
	connOpened struct {
		c          *actors.Connection
		identity   string
		err        error
		sessionKey []byte
		received   uint64
	}
	// lookupDone: lookup number gen of g ended; pid is nil when it failed.
	lookupDone struct {
		g   *grainRef
		gen uint64
		pid *actor.PID
	}
	// retryLookup: time to look g up again after a failed lookup.
	retryLookup struct{ g *grainRef }
	// tick: check the Credit timeouts.
	tick struct{}
	// flush: send what the messages before it made ready.
	flush struct{}
)

type router struct {
	f      *Front
	opts   FrontOptions
	self   *actor.PID
	member string // prefix of connection keys: unique to this process
	conns  map[uint64]*fconn
	byKey  map[string]*fconn
	grains map[string]*grainRef
	byPID  map[string]*grainRef // by the grain activation's PID
	stopT  chan struct{}
	// dirty grains have connections with tokens to send or batches to send
	// again; flush sends them, one message per grain. A flush message is
	// queued behind the messages already in the mailbox, so that the
	// tokens of many connections for one grain leave together.
	dirty    map[*grainRef]struct{}
	flushing bool
}

// fconn is the router's state of one connection.
type fconn struct {
	c        *actors.Connection
	key      string
	g        *grainRef
	seq      uint64   // last seq sent
	acked    uint64   // highest seq credited
	inflight []*batch // sent, not credited, by seq
	pending  [][]byte // not sent yet
	pendingN int      // bytes in pending
	// runs cut pending into stretches that may share a batch (token/2:
	// consecutive numbers of the session, flagged redelivered or not).
	runs []run
	// sessionKey names the token/2 session of c to its grain (nil on
	// token/1); received is what its client had received of the session
	// before c, written the session's number of the last reply handed to c
	// (received, then one more per reply). announce: the first batch, without
	// tokens, is still to send.
	sessionKey        []byte
	received, written uint64
	announce          bool
	// delivered is the last written that the client is known to have
	// acknowledged (see checkDelivered).
	delivered uint64
}

// run is a stretch of a connection's pending tokens that can travel in one
// batch: on token/2, consecutive numbers of the session (first, first+1...)
// all flagged redelivered or none; on token/1 (first 0), any.
type run struct {
	first       uint64
	redelivered bool
	n           int
}

type batch struct {
	seq    uint64
	tokens [][]byte
	sent   time.Time
	// first and redelivered: the session's number of the first token, and
	// the client's flag (token/2).
	first       uint64
	redelivered bool
}

// grainRef is the router's state of one grain (one identity).
type grainRef struct {
	identity string
	pid      *actor.PID // nil while unknown
	looking  bool       // a lookup runs
	gen      uint64     // number of the latest lookup; older ones are stale
	waiting  bool       // a retry is scheduled
	conns    map[*fconn]struct{}
	lostAt   time.Time // when the grain was lost with batches outstanding
	resend   bool      // its outstanding batches go again at the next flush
	msgs     int       // messages sent to pid not answered yet
}

func newRouter(f *Front) *router {
	return &router{
		f: f, opts: f.opts, member: f.system.ID,
		conns: map[uint64]*fconn{}, byKey: map[string]*fconn{},
		grains: map[string]*grainRef{}, byPID: map[string]*grainRef{},
		dirty: map[*grainRef]struct{}{},
	}
}

func (r *router) log() *slog.Logger { return r.opts.Logger }

// Receive handles one message.
func (r *router) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		r.self = ctx.Self()
		r.startTicker(ctx)
	case connOpened:
		r.onOpened(ctx, m)
	case *actors.TokenReceived:
		r.onToken(ctx, m)
	case *actors.Closed:
		if m.Conn != nil {
			r.onClosed(ctx, m.ConnID)
		}
	case *clusterpb.Credit:
		r.answered(ctx, m.Identity)
		r.onCredit(ctx, m)
	case *clusterpb.Credits:
		r.answered(ctx, m.Identity)
		for _, c := range m.Credits {
			r.onCredit(ctx, c)
		}
	case flush:
		r.flushing = false
		r.flush(ctx)
	case *clusterpb.ReplyBatch:
		if fc := r.byKey[m.Conn]; fc != nil {
			r.write(fc, m.ReplyFrom, m.Tokens)
		}
	case *clusterpb.CloseRequest:
		if fc := r.byKey[m.Conn]; fc != nil {
			fc.c.Close()
		}
	case lookupDone:
		r.onLookup(ctx, m)
	case retryLookup:
		m.g.waiting = false
		if r.grains[m.g.identity] == m.g && m.g.pid == nil {
			r.lookup(ctx, m.g, false)
		}
	case *pcluster.ClusterTopology:
		r.onTopology(ctx, m)
	case *actor.Terminated:
		if g := r.byPID[pidKey(m.Who)]; g != nil {
			r.lost(ctx, g, "grain terminated")
		}
	case tick:
		r.checkTimeouts(ctx)
	case *actor.Stopping:
		if r.stopT != nil {
			close(r.stopT)
		}
	}
}

func (r *router) startTicker(ctx actor.Context) {
	every := max(r.opts.AckTimeout/4, 10*time.Millisecond)
	r.stopT = make(chan struct{})
	root, self, stop := ctx.ActorSystem().Root, ctx.Self(), r.stopT
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				root.Send(self, tick{})
			case <-stop:
				return
			}
		}
	}()
}

func pidKey(p *actor.PID) string { return p.Address + "/" + p.Id }

func (r *router) onOpened(ctx actor.Context, m connOpened) {
	if m.err != nil {
		r.log().Warn("connection without identity: closing it", "conn", m.c.ID(), "err", m.err)
		m.c.Close()
		return
	}
	fc := &fconn{c: m.c, key: fmt.Sprintf("%s/%d", r.member, m.c.ID()),
		sessionKey: m.sessionKey, received: m.received, written: m.received, announce: m.sessionKey != nil}
	g := r.grains[m.identity]
	if g == nil {
		g = &grainRef{identity: m.identity, conns: map[*fconn]struct{}{}}
		r.grains[m.identity] = g
	}
	fc.g = g
	g.conns[fc] = struct{}{}
	r.conns[m.c.ID()] = fc
	r.byKey[fc.key] = fc
	r.f.stats.connections.Add(1)
	if g.pid == nil {
		r.lookup(ctx, g, false)
	}
}

func (r *router) onToken(ctx actor.Context, m *actors.TokenReceived) {
	fc := r.conns[m.ConnID]
	if fc == nil { // a connection without identity, being closed
		ctx.Send(m.Conn, &actors.Credit{Tokens: 1})
		return
	}
	fc.pending = append(fc.pending, m.Data)
	fc.pendingN += len(m.Data)
	fc.addRun(m.Seq, m.Redelivered)
	r.pump(ctx, fc)
}

// addRun counts a pending token of number seq (0 on token/1) in the runs.
func (fc *fconn) addRun(seq uint64, redelivered bool) {
	if n := len(fc.runs); n > 0 {
		last := &fc.runs[n-1]
		next := last.first + uint64(last.n)
		if last.redelivered == redelivered && (seq == 0 && last.first == 0 || last.first != 0 && seq == next) {
			last.n++
			return
		}
	}
	fc.runs = append(fc.runs, run{first: seq, redelivered: redelivered, n: 1})
}

// pump marks fc's grain for the next flush when fc has a batch to send.
func (r *router) pump(ctx actor.Context, fc *fconn) {
	if fc.g.pid != nil && fc.toSend() && len(fc.inflight) < r.opts.Window {
		r.markDirty(ctx, fc.g)
	}
}

// toSend reports whether fc has tokens, or its first batch, to send.
func (fc *fconn) toSend() bool { return len(fc.pending) > 0 || fc.announce }

func (r *router) markDirty(ctx actor.Context, g *grainRef) {
	r.dirty[g] = struct{}{}
	if !r.flushing {
		r.flushing = true
		ctx.Send(ctx.Self(), flush{})
	}
}

// flush sends, per dirty grain, one message with the batches of all its
// connections: those to send again after a loss, then new ones while each
// connection's window has room.
func (r *router) flush(ctx actor.Context) {
	for g := range r.dirty {
		delete(r.dirty, g)
		if g.pid == nil || r.grains[g.identity] != g {
			continue
		}
		if g.msgs >= r.opts.GrainWindow && !g.resend {
			continue // the next answer flushes g again
		}
		var out []*clusterpb.TokenBatch
		for fc := range g.conns {
			fc.checkDelivered()
			if g.resend {
				for _, b := range fc.inflight { // sent to a lost activation
					b.sent = time.Now()
					r.f.stats.resent.Add(1)
					out = append(out, r.message(fc, b))
				}
			}
			for fc.toSend() && len(fc.inflight) < r.opts.Window {
				b := r.cut(fc)
				out = append(out, r.message(fc, b))
			}
		}
		g.resend = false
		if len(out) > 0 {
			g.msgs++
			r.f.stats.messages.Add(1)
		}
		switch len(out) {
		case 0:
		case 1:
			ctx.Send(g.pid, out[0])
		default:
			ctx.Send(g.pid, &clusterpb.TokenBatches{Batches: out})
		}
	}
}

// answered: a message to the grain of identity was answered; what waited
// for room in its window goes at the next flush.
func (r *router) answered(ctx actor.Context, identity string) {
	g := r.grains[identity]
	if g == nil {
		return
	}
	if g.msgs > 0 {
		g.msgs--
	}
	for fc := range g.conns {
		if fc.toSend() {
			r.markDirty(ctx, g)
			return
		}
	}
}

// cut makes the next batch of fc from its pending tokens, of its first run;
// or its first, without tokens, on token/2.
func (r *router) cut(fc *fconn) *batch {
	if fc.announce {
		fc.announce = false
		r.f.stats.batches.Add(1)
		return fc.sent(&batch{seq: fc.seq + 1, sent: time.Now()})
	}
	n, size := 0, 0
	head := &fc.runs[0]
	for n < head.n && n < r.opts.MaxBatch && (n == 0 || size+len(fc.pending[n]) <= r.opts.MaxBatchBytes) {
		size += len(fc.pending[n])
		n++
	}
	b := &batch{seq: fc.seq + 1, tokens: fc.pending[:n:n], sent: time.Now(), first: head.first, redelivered: head.redelivered}
	if head.n -= n; head.n == 0 {
		fc.runs = fc.runs[1:]
	} else if head.first != 0 {
		head.first += uint64(n)
	}
	if len(fc.runs) == 0 {
		fc.runs = nil
	}
	fc.pending = fc.pending[n:]
	fc.pendingN -= size
	if len(fc.pending) == 0 {
		fc.pending = nil
	}
	r.f.stats.batches.Add(1)
	r.f.stats.forwarded.Add(int64(n))
	return fc.sent(b)
}

// checkDelivered notes, on token/2, that the client has acknowledged every
// reply written to it when its live connection has nothing queued or
// unacknowledged (token/2 counts a data frame in Queued until its ACK;
// Queued first, since the count is let go when the connection ends, after
// its gate closed).
func (fc *fconn) checkDelivered() {
	if fc.sessionKey != nil && fc.c.Queued() == 0 && !fc.c.IsDead() {
		fc.delivered = fc.written
	}
}

// sent records b as fc's latest batch, awaiting its Credit.
func (fc *fconn) sent(b *batch) *batch {
	fc.seq = b.seq
	fc.inflight = append(fc.inflight, b)
	return b
}

func (r *router) message(fc *fconn, b *batch) *clusterpb.TokenBatch {
	m := &clusterpb.TokenBatch{
		Conn: fc.key, Seq: b.seq, Acked: fc.acked, ReplyTo: r.self,
		Tokens: b.tokens, Identity: fc.g.identity,
	}
	if fc.sessionKey != nil {
		m.Session, m.First, m.Redelivered = fc.sessionKey, b.first, b.redelivered
		m.Received, m.Written, m.Delivered = fc.received, fc.written, fc.delivered
	}
	return m
}

func (r *router) onCredit(ctx actor.Context, m *clusterpb.Credit) {
	fc := r.byKey[m.Conn]
	if fc == nil {
		return // the connection closed meanwhile
	}
	if m.Seq <= fc.acked || len(fc.inflight) == 0 {
		r.f.stats.duplicates.Add(1)
		return
	}
	tokens := 0
	for len(fc.inflight) > 0 && fc.inflight[0].seq <= m.Seq {
		tokens += len(fc.inflight[0].tokens)
		fc.inflight[0] = nil
		fc.inflight = fc.inflight[1:]
	}
	fc.acked = m.Seq
	if len(fc.inflight) == 0 {
		fc.inflight = nil
	}
	g := fc.g
	if !g.lostAt.IsZero() {
		lost := time.Since(g.lostAt)
		g.lostAt = time.Time{}
		r.f.stats.failovers.Add(1)
		r.log().Info("grain reached again after a loss", "identity", g.identity, "after", lost)
		if r.opts.OnFailover != nil {
			r.opts.OnFailover(g.identity, lost)
		}
	}
	r.write(fc, m.ReplyFrom, m.Replies)
	if tokens > 0 {
		ctx.Send(fc.c.PID(), &actors.Credit{Tokens: tokens})
	}
	if m.Close {
		fc.c.Close()
	}
	r.pump(ctx, fc)
}

// write hands replies to fc's connection, after those before. On token/2,
// from is the session's number of the first (the grain numbers a session's
// replies as its client receives them): a number the router has written
// already is skipped, and a gap (replies lost between the grain and here)
// is logged; the client's numbering goes on from what is written.
func (r *router) write(fc *fconn, from uint64, replies [][]byte) {
	if fc.sessionKey != nil && from != 0 {
		switch {
		case from <= fc.written:
			skip := min(fc.written-from+1, uint64(len(replies)))
			r.log().Warn("token/2 replies written already: skipped", "conn", fc.key, "from", from, "written", fc.written, "skipped", skip)
			replies = replies[skip:]
		case from > fc.written+1:
			r.log().Warn("token/2 replies missing before these: the client numbers them otherwise than the grain",
				"conn", fc.key, "from", from, "written", fc.written)
		}
	}
	if len(replies) == 0 {
		return
	}
	r.f.stats.replies.Add(int64(len(replies)))
	if fc.c.SendBatch(replies) && fc.sessionKey != nil {
		fc.written += uint64(len(replies))
	}
}

func (r *router) onClosed(ctx actor.Context, id uint64) {
	fc := r.conns[id]
	if fc == nil {
		return
	}
	delete(r.conns, id)
	delete(r.byKey, fc.key)
	g := fc.g
	delete(g.conns, fc)
	if g.pid != nil {
		ctx.Send(g.pid, &clusterpb.ConnClosed{Conn: fc.key})
	}
	if len(g.conns) == 0 {
		if g.pid != nil {
			ctx.Unwatch(g.pid)
			delete(r.byPID, pidKey(g.pid))
		}
		delete(r.grains, g.identity)
	}
}

// lookup starts a lookup of g on a goroutine of its own, unless one runs.
// With fresh set, it starts one even so: the membership changed, and the
// running one may be waiting on a member that is gone (Proto.Actor's lookup
// asks the owner's placement actor and waits up to 5 s); its answer will be
// ignored.
func (r *router) lookup(ctx actor.Context, g *grainRef, fresh bool) {
	if g.looking && !fresh {
		return
	}
	g.looking = true
	g.gen++
	r.f.stats.lookups.Add(1)
	cl, kind, gen := r.opts.Cluster, r.opts.Kind, g.gen
	root, self := ctx.ActorSystem().Root, ctx.Self()
	go func() {
		pid, _ := cl.PidCache.Get(g.identity, kind)
		if pid == nil {
			pid = cl.Get(g.identity, kind)
			if pid != nil {
				cl.PidCache.Set(g.identity, kind, pid)
			}
		}
		root.Send(self, lookupDone{g: g, gen: gen, pid: pid})
	}()
}

func (r *router) onLookup(ctx actor.Context, m lookupDone) {
	g := m.g
	if m.gen != g.gen || r.grains[g.identity] != g || g.pid != nil {
		return // stale, or every connection of g closed meanwhile
	}
	g.looking = false
	if m.pid == nil {
		r.log().Debug("grain lookup failed; retrying", "identity", g.identity)
		if !g.waiting {
			g.waiting = true
			root, self := ctx.ActorSystem().Root, ctx.Self()
			time.AfterFunc(r.opts.RetryDelay, func() { root.Send(self, retryLookup{g}) })
		}
		return
	}
	g.pid = m.pid
	r.byPID[pidKey(m.pid)] = g
	ctx.Watch(m.pid)
	g.resend, g.msgs = true, 0
	r.markDirty(ctx, g)
}

// lost: g's activation is gone (its node left, it stopped, or it does not
// answer). Look it up again; its outstanding batches go to the new one.
func (r *router) lost(ctx actor.Context, g *grainRef, why string) {
	if g.pid == nil {
		return
	}
	outstanding := false
	for fc := range g.conns {
		if len(fc.inflight) > 0 {
			outstanding = true
		}
	}
	r.log().Info("grain lost", "identity", g.identity, "pid", g.pid, "why", why, "outstanding", outstanding)
	ctx.Unwatch(g.pid)
	delete(r.byPID, pidKey(g.pid))
	r.opts.Cluster.PidCache.RemoveByValue(g.identity, r.opts.Kind, g.pid)
	g.pid = nil
	if outstanding && g.lostAt.IsZero() {
		g.lostAt = time.Now()
	}
	r.lookup(ctx, g, true)
}

func (r *router) onTopology(ctx actor.Context, t *pcluster.ClusterTopology) {
	left := map[string]bool{}
	for _, m := range t.Left {
		left[m.Address()] = true
	}
	for _, g := range r.grains {
		switch {
		case g.pid != nil && left[g.pid.Address]:
			r.lost(ctx, g, "member left")
		case g.pid == nil:
			// A lookup that runs may wait on the old owner: start a new one.
			r.lookup(ctx, g, true)
		}
	}
}

func (r *router) checkTimeouts(ctx actor.Context) {
	now := time.Now()
	for _, g := range r.grains {
		if g.pid == nil {
			continue
		}
		for fc := range g.conns {
			if len(fc.inflight) > 0 && now.Sub(fc.inflight[0].sent) > r.opts.AckTimeout {
				r.lost(ctx, g, "credit timed out")
				break
			}
		}
	}
}
