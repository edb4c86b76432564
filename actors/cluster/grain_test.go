package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/require"
	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/actors/cluster/clusterpb"
	"github.com/tokenserver/tokenserver/tlsio"
	"google.golang.org/protobuf/proto"
)

// collect is an actor that hands every Credit and Credits it gets to
// channels.
type collect struct {
	one  chan *clusterpb.Credit
	many chan *clusterpb.Credits
}

func (c collect) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *clusterpb.Credit:
		c.one <- m
	case *clusterpb.Credits:
		c.many <- m
	}
}

func recvCredit(t *testing.T, ch chan *clusterpb.Credit) *clusterpb.Credit {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no Credit")
		return nil
	}
}

// The grain processes each (conn, seq) once, answers a repeat with the
// Credit of the first time, and drops a batch that comes before its
// predecessor; a new activation starts from the front's acked.
func TestGrainDedup(t *testing.T) {
	system := actors.NewQuietSystem()
	defer system.Shutdown()
	handled := 0
	props := grainProps(func(identity string) Handler {
		return HandlerFunc(func(tk *Token) {
			handled++
			tk.Reply(append([]byte(identity+":"), tk.Data...))
		})
	}, GrainOptions{})
	g := system.Root.Spawn(props)
	ch, chs := make(chan *clusterpb.Credit, 16), make(chan *clusterpb.Credits, 16)
	replyTo := system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return collect{ch, chs} }))
	send := func(seq, acked uint64, tokens ...string) {
		b := &clusterpb.TokenBatch{Conn: "m/1", Seq: seq, Acked: acked, ReplyTo: replyTo, Identity: "id"}
		for _, s := range tokens {
			b.Tokens = append(b.Tokens, []byte(s))
		}
		// Through the wire format, as between nodes.
		raw, err := proto.Marshal(b)
		require.NoError(t, err)
		var back clusterpb.TokenBatch
		require.NoError(t, proto.Unmarshal(raw, &back))
		back.ReplyTo = replyTo // a remote PID resolves to the local one here
		system.Root.Send(g, &back)
	}
	send(1, 0, "a", "b")
	c := recvCredit(t, ch)
	require.Equal(t, uint64(1), c.Seq)
	require.Equal(t, [][]byte{[]byte("id:a"), []byte("id:b")}, c.Replies)
	send(1, 0, "a", "b") // a repeat: same answer, not handled again
	c = recvCredit(t, ch)
	require.Equal(t, uint64(1), c.Seq)
	require.Len(t, c.Replies, 2)
	send(3, 1, "x") // 2 is missing: dropped
	send(2, 1, "c")
	c = recvCredit(t, ch)
	require.Equal(t, uint64(2), c.Seq)
	require.Equal(t, [][]byte{[]byte("id:c")}, c.Replies)
	require.Equal(t, 3, handled)

	// A new activation (after a failover) takes up at the front's acked.
	g2 := system.Root.Spawn(props)
	b := &clusterpb.TokenBatch{Conn: "m/1", Seq: 3, Acked: 2, ReplyTo: replyTo, Identity: "id", Tokens: [][]byte{[]byte("d")}}
	system.Root.Send(g2, b)
	c = recvCredit(t, ch)
	require.Equal(t, uint64(3), c.Seq)
	require.Equal(t, 4, handled)

	// Batches of several connections in one message: one Credits, in order,
	// a repeat among them answered as the first time.
	system.Root.Send(g2, &clusterpb.TokenBatches{Batches: []*clusterpb.TokenBatch{
		{Conn: "m/2", Seq: 1, ReplyTo: replyTo, Identity: "id", Tokens: [][]byte{[]byte("e")}},
		{Conn: "m/1", Seq: 3, Acked: 2, ReplyTo: replyTo, Identity: "id", Tokens: [][]byte{[]byte("d")}},
		{Conn: "m/1", Seq: 4, Acked: 2, ReplyTo: replyTo, Identity: "id", Tokens: [][]byte{[]byte("f")}},
	}})
	cs := recvCredits(t, chs)
	require.Len(t, cs.Credits, 3)
	require.Equal(t, "m/2", cs.Credits[0].Conn)
	require.Equal(t, [][]byte{[]byte("id:d")}, cs.Credits[1].Replies)
	require.Equal(t, [][]byte{[]byte("id:f")}, cs.Credits[2].Replies)
	require.Equal(t, 6, handled)
}

func recvCredits(t *testing.T, ch chan *clusterpb.Credits) *clusterpb.Credits {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no Credits")
		return nil
	}
}

func TestDefaultIdentity(t *testing.T) {
	certs, err := tlsio.GenerateDevCerts()
	require.NoError(t, err)
	blk, _ := pem.Decode(certs.ClientCert)
	leaf, err := x509.ParseCertificate(blk.Bytes)
	require.NoError(t, err)
	_, err = DefaultIdentity(tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}})
	require.ErrorIs(t, err, ErrNoIdentity, "an unverified certificate has no identity")
	st := tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}, VerifiedChains: [][]*x509.Certificate{{leaf}}}
	id, err := DefaultIdentity(st)
	require.NoError(t, err)
	require.Len(t, id, 64)
	subj, err := SubjectIdentity(st)
	require.NoError(t, err)
	require.Equal(t, leaf.Subject.String(), subj)
}

func TestRemoteConfig(t *testing.T) {
	_, err := RemoteConfig("10.0.0.1", 0, nil)
	require.ErrorIs(t, err, ErrInvalidNode)
	for _, h := range []string{"127.0.0.1", "::1", "localhost"} {
		_, err = RemoteConfig(h, 0, nil)
		require.NoError(t, err, h)
	}
	certs, err := tlsio.GenerateDevCerts()
	require.NoError(t, err)
	cfg, err := RemoteConfig("10.0.0.1", 0, &NodeTLS{Server: certs.ServerOptions(), Client: certs.ClientOptions(), OwnCA: true})
	require.NoError(t, err)
	require.Len(t, cfg.ServerOptions, 3, "credentials, the unary and the stream guard")
	require.Len(t, cfg.DialOptions, 2, "remote's default (insecure), then the credentials that replace it")
	noClientAuth := certs.ServerOptions()
	noClientAuth.RequestCert = false
	_, err = RemoteConfig("127.0.0.1", 0, &NodeTLS{Server: noClientAuth, Client: certs.ClientOptions(), OwnCA: true})
	require.ErrorIs(t, err, ErrInvalidNode)
}

// sessionGrain is a grain under test, its handler's record of every token
// it handled, and what it sends to the fronts: all to one recorder (the
// fronts of the tests share it), in the order sent.
type sessionGrain struct {
	t       *testing.T
	system  *actor.ActorSystem
	pid     *actor.PID
	replyTo *actor.PID
	out     chan any
	handled chan handledToken
	seqs    map[string]uint64 // the last batch of each connection
}

type handledToken struct {
	data        string
	redelivered bool
}

// record hands every message it gets to a channel.
type record chan any

func (r record) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *clusterpb.Credit, *clusterpb.Credits, *clusterpb.ReplyBatch, *clusterpb.CloseRequest:
		r <- m
	}
}

func newSessionGrain(t *testing.T, o GrainOptions) *sessionGrain {
	system := actors.NewQuietSystem()
	t.Cleanup(system.Shutdown)
	g := &sessionGrain{t: t, system: system, out: make(chan any, 64), handled: make(chan handledToken, 256),
		seqs: map[string]uint64{}}
	g.pid = system.Root.Spawn(grainProps(func(identity string) Handler {
		return HandlerFunc(func(tk *Token) {
			g.handled <- handledToken{string(tk.Data), tk.Redelivered}
			tk.Reply([]byte("re:" + string(tk.Data)))
			if string(tk.Data) == "bye" {
				tk.Close()
			}
		})
	}, o))
	g.replyTo = system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return record(g.out) }))
	return g
}

// conn is a token/2 connection of a session as its front tells the grain.
type conn struct {
	name, session                string
	received, written, delivered uint64
}

// open sends c's first batch, without tokens, and returns what the grain
// sent.
func (g *sessionGrain) open(c conn) []string {
	g.t.Helper()
	return g.send(c, 0, false)
}

// tokens sends a batch of c with the session's numbers from first, and
// returns what the grain sent (up to the batch's Credit, that included),
// and what the handler handled meanwhile.
func (g *sessionGrain) tokens(c conn, first uint64, redelivered bool, tokens ...string) ([]string, []handledToken) {
	g.t.Helper()
	sent := g.send(c, first, redelivered, tokens...)
	var handled []handledToken
	for {
		select {
		case h := <-g.handled:
			handled = append(handled, h)
		default: // the handler ran before the Credit was sent
			return sent, handled
		}
	}
}

// send sends a batch of c through the wire format, as between nodes, and
// returns what the grain sent, described, up to the batch's Credit.
func (g *sessionGrain) send(c conn, first uint64, redelivered bool, tokens ...string) []string {
	g.t.Helper()
	g.seqs[c.name]++
	seq := g.seqs[c.name]
	b := &clusterpb.TokenBatch{Conn: c.name, Seq: seq, Acked: seq - 1, ReplyTo: g.replyTo, Identity: "id",
		Session: []byte(c.session), First: first, Redelivered: redelivered, Received: c.received, Written: c.written,
		Delivered: c.delivered}
	for _, s := range tokens {
		b.Tokens = append(b.Tokens, []byte(s))
	}
	raw, err := proto.Marshal(b)
	require.NoError(g.t, err)
	var back clusterpb.TokenBatch
	require.NoError(g.t, proto.Unmarshal(raw, &back))
	back.ReplyTo = g.replyTo // a remote PID resolves to the local one here
	g.system.Root.Send(g.pid, &back)
	var out []string
	for {
		m := g.next()
		if m == nil {
			return out
		}
		out = append(out, describe(m))
		if cr, ok := m.(*clusterpb.Credit); ok && cr.Conn == c.name && cr.Seq == seq {
			return out
		}
	}
}

// later sends the grain m (a ReplyBatch or CloseRequest, as a handler that
// answers outside its call) and returns the n messages the grain sends.
func (g *sessionGrain) later(m any, n int) []string {
	g.t.Helper()
	g.system.Root.Send(g.pid, m)
	var out []string
	for range n {
		if m := g.next(); m != nil {
			out = append(out, describe(m))
		}
	}
	return out
}

func (g *sessionGrain) next() any {
	g.t.Helper()
	select {
	case m := <-g.out:
		return m
	case <-time.After(5 * time.Second):
		g.t.Fatal("the grain sent nothing")
		return nil
	}
}

// describe is a message to a front, for a test to compare: "credit f1/1#2
// 3:re:a,re:b close" (conn and seq, then the number of the first reply and
// the replies), "replies f2/1 4:re:c", "close f2/1".
func describe(m any) string {
	joined := func(from uint64, rs [][]byte) string {
		var ss []string
		for _, r := range rs {
			ss = append(ss, string(r))
		}
		return fmt.Sprintf(" %d:%s", from, strings.Join(ss, ","))
	}
	switch m := m.(type) {
	case *clusterpb.Credit:
		s := fmt.Sprintf("credit %s#%d", m.Conn, m.Seq)
		if len(m.Replies) > 0 || m.ReplyFrom != 0 {
			s += joined(m.ReplyFrom, m.Replies)
		}
		if m.Close {
			s += " close"
		}
		return s
	case *clusterpb.ReplyBatch:
		return "replies " + m.Conn + joined(m.ReplyFrom, m.Tokens)
	case *clusterpb.CloseRequest:
		return "close " + m.Conn
	}
	return fmt.Sprintf("%T", m)
}

func tokensOf(handled []handledToken) []string {
	var out []string
	for _, h := range handled {
		out = append(out, h.data)
	}
	return out
}

// A token/2 session's tokens are handled once whatever connection (front)
// they come through, and its replies are numbered as its client receives
// them: when the client comes to another front (the one it was on died),
// the grain sends there, first, the replies the client had not received,
// and adds none for the tokens the client sends again. Another session's
// numbers are its own.
func TestGrainSessionReplies(t *testing.T) {
	g := newSessionGrain(t, GrainOptions{})
	const s1, s2 = "session-one-1234", "session-two-1234"

	f1 := conn{name: "f1/1", session: s1}
	require.Equal(t, []string{"credit f1/1#1"}, g.open(f1))
	sent, handled := g.tokens(f1, 1, false, "a", "b", "c")
	require.Equal(t, []string{"credit f1/1#2 1:re:a,re:b,re:c"}, sent)
	require.Equal(t, []handledToken{{"a", false}, {"b", false}, {"c", false}}, handled)

	// f1 died; the client had read re:a, and not the acknowledgement of b
	// and c. It resumes on f2, which numbers its data frames from 2.
	f2 := conn{name: "f2/7", session: s1, received: 1, written: 1}
	require.Equal(t, []string{"credit f2/7#1 2:re:b,re:c"}, g.open(f2), "what the client had not received, numbered from 2")
	sent, handled = g.tokens(f2, 2, true, "b", "c")
	require.Equal(t, []string{"credit f2/7#2"}, sent, "their replies came already")
	require.Empty(t, handled, "not handled again")
	sent, handled = g.tokens(f2, 4, false, "d")
	require.Equal(t, []string{"credit f2/7#3 4:re:d"}, sent)
	require.Equal(t, []string{"d"}, tokensOf(handled))

	// f2 dies too, after the client had read everything: nothing again.
	f3 := conn{name: "f3/2", session: s1, received: 4, written: 4}
	require.Equal(t, []string{"credit f3/2#1"}, g.open(f3))
	sent, handled = g.tokens(f3, 5, false, "e", "bye")
	require.Equal(t, []string{"credit f3/2#2 5:re:e,re:bye close"}, sent)
	require.Equal(t, []handledToken{{"e", false}, {"bye", false}}, handled)

	// f3 dies before the close: the client had read re:e; re:bye, and the
	// close, come again.
	f4 := conn{name: "f4/1", session: s1, received: 5, written: 5}
	require.Equal(t, []string{"credit f4/1#1 6:re:bye close"}, g.open(f4))
	sent, handled = g.tokens(f4, 6, true, "bye")
	require.Equal(t, []string{"credit f4/1#2"}, sent)
	require.Empty(t, handled)

	// Another session (another client, or another certificate) with the
	// same numbers.
	x := conn{name: "f1/2", session: s2}
	require.Equal(t, []string{"credit f1/2#1"}, g.open(x))
	sent, handled = g.tokens(x, 1, false, "x", "y")
	require.Equal(t, []string{"credit f1/2#2 1:re:x,re:y"}, sent)
	require.Equal(t, []string{"x", "y"}, tokensOf(handled))

	// token/1 batches (no session) are handled as they come.
	sent, handled = g.tokens(conn{name: "f1/3"}, 0, false, "p")
	require.Equal(t, []string{"credit f1/3#1 0:re:p"}, sent)
	require.Equal(t, []string{"p"}, tokensOf(handled))
	sent, handled = g.tokens(conn{name: "f2/3"}, 0, false, "p")
	require.Equal(t, []string{"credit f2/3#1 0:re:p"}, sent)
	require.Equal(t, []string{"p"}, tokensOf(handled), "token/1: no session, no way to tell a repeat")
}

// A session alive on two fronts at once (its client went to f2 before f1
// saw its socket die): the grain sends the session's replies through the
// newest connection only, those of tokens that still come through f1
// included, and those a handler makes later for f1's connection; a
// connection older than the newest never becomes it. When the newest
// closes, replies wait for the next.
func TestGrainSessionNewestConnection(t *testing.T) {
	g := newSessionGrain(t, GrainOptions{})
	const s = "session-one-1234"
	f1 := conn{name: "f1/1", session: s}
	g.open(f1)
	sent, _ := g.tokens(f1, 1, false, "a")
	require.Equal(t, []string{"credit f1/1#2 1:re:a"}, sent)

	f2 := conn{name: "f2/1", session: s, received: 1, written: 1}
	require.Equal(t, []string{"credit f2/1#1"}, g.open(f2))
	// f1 still reads the client's tokens sent before it left.
	sent, handled := g.tokens(f1, 2, false, "b")
	require.Equal(t, []string{"replies f2/1 2:re:b", "credit f1/1#3"}, sent)
	require.Equal(t, []string{"b"}, tokensOf(handled))
	sent, handled = g.tokens(f2, 2, true, "b", "c", "bye")
	require.Equal(t, []string{"credit f2/1#2 3:re:c,re:bye close"}, sent)
	require.Equal(t, []string{"c", "bye"}, tokensOf(handled))

	// A handler that answers later, naming f1's connection.
	require.Equal(t, []string{"replies f2/1 5:late"},
		g.later(&clusterpb.ReplyBatch{Conn: "f1/1", Tokens: [][]byte{[]byte("late")}}, 1),
		"the reply goes to the newest connection, numbered")
	require.Equal(t, []string{"close f2/1"}, g.later(&clusterpb.CloseRequest{Conn: "f1/1"}, 1))

	// A connection the grain sees now, but older than f2's (its client had
	// received less before it): not the newest.
	f0 := conn{name: "f0/1", session: s}
	require.Equal(t, []string{"credit f0/1#1"}, g.open(f0))
	sent, _ = g.tokens(f0, 5, false, "d")
	require.Equal(t, []string{"replies f2/1 6:re:d", "credit f0/1#2"}, sent)

	// f2's connection closes (its front saw it end): a later reply is kept
	// for the next connection, which gets what its client lacks.
	g.system.Root.Send(g.pid, &clusterpb.ConnClosed{Conn: "f2/1"})
	g.system.Root.Send(g.pid, &clusterpb.ReplyBatch{Conn: "f1/1", Tokens: [][]byte{[]byte("later")}})
	f3 := conn{name: "f3/1", session: s, received: 5, written: 5}
	require.Equal(t, []string{"credit f3/1#1 6:re:d,later close"}, g.open(f3))
}

// A grain that has no record of a session (a new activation, after its
// handler node died) handles the client's tokens sent again, flagged
// Redelivered: they may have been handled before; it numbers the replies
// on from what the front has written.
func TestGrainSessionUnknown(t *testing.T) {
	g := newSessionGrain(t, GrainOptions{})
	const s = "session-one-1234"
	f2 := conn{name: "f2/1", session: s, received: 3, written: 10}
	g.seqs[f2.name] = 4 // its first batches went to the lost activation
	sent, handled := g.tokens(f2, 7, true, "g", "h")
	require.Equal(t, []string{"credit f2/1#5 11:re:g,re:h"}, sent)
	require.Equal(t, []handledToken{{"g", true}, {"h", true}}, handled)
	sent, handled = g.tokens(f2, 9, false, "i")
	require.Equal(t, []string{"credit f2/1#6 13:re:i"}, sent)
	require.Equal(t, []handledToken{{"i", false}}, handled)
	// From then on the record knows them.
	_, handled = g.tokens(conn{name: "f3/1", session: s, received: 13, written: 13}, 7, true, "g", "h", "i")
	require.Empty(t, handled)
	// A number before the record's first is handled, flagged; a gap starts
	// the record again (a number never seen is never taken for a repeat).
	f4 := conn{name: "f4/1", session: s, received: 13, written: 13}
	_, handled = g.tokens(f4, 5, true, "e")
	require.Equal(t, []handledToken{{"e", true}}, handled)
	_, handled = g.tokens(f4, 20, false, "t")
	require.Equal(t, []handledToken{{"t", false}}, handled)
	_, handled = g.tokens(conn{name: "f5/1", session: s, received: 15, written: 15}, 12, true, "l")
	require.Equal(t, []handledToken{{"l", true}}, handled, "12 is before the record's new start, 20")
}

// What a grain keeps is bounded: at most MaxKeptReplies replies (or
// MaxKeptBytes) per session, the oldest going first. A client that had not
// received those when its front died does not get them (logged); the
// grain numbers the rest on from what it had received.
func TestGrainSessionKeptBounds(t *testing.T) {
	g := newSessionGrain(t, GrainOptions{MaxKeptReplies: 3})
	const s = "session-one-1234"
	f1 := conn{name: "f1/1", session: s}
	g.open(f1)
	g.tokens(f1, 1, false, "1", "2", "3", "4", "5")
	sent, handled := g.tokens(conn{name: "f2/1", session: s, received: 1, written: 1}, 2, true, "2", "3", "4", "5", "6")
	require.Equal(t, []string{"credit f2/1#1 2:re:3,re:4,re:5,re:6"}, sent, "re:2 is no longer kept")
	require.Equal(t, []string{"6"}, tokensOf(handled))
	// Renumbered: re:6 is the client's 5.
	require.Equal(t, []string{"credit f3/1#1 5:re:6"}, g.open(conn{name: "f3/1", session: s, received: 4, written: 4}))

	// Bytes: each reply counts its length and keptOverhead.
	b := newSessionGrain(t, GrainOptions{MaxKeptBytes: 3 * (keptOverhead + len("re:1"))})
	f1 = conn{name: "f1/1", session: s}
	b.open(f1)
	b.tokens(f1, 1, false, "1", "2", "3", "4")
	require.Equal(t, []string{"credit f2/1#1 1:re:2,re:3,re:4"}, b.open(conn{name: "f2/1", session: s}))
}

// A grain lets go of the replies that the client has acknowledged
// (TokenBatch.delivered, from any connection of the session): what it keeps
// is what the client may not have, within the bounds of
// TestGrainSessionKeptBounds.
func TestGrainSessionRelease(t *testing.T) {
	o := GrainOptions{}.withDefaults()
	s := &gsession{}
	require.Equal(t, uint64(1), s.number([][]byte{[]byte("a"), []byte("b"), []byte("c")}, &o))
	s.release(0)
	require.Len(t, s.kept, 3)
	s.release(2)
	require.Equal(t, [][]byte{[]byte("c")}, s.kept)
	require.Equal(t, len("c")+keptOverhead, s.keptBytes)
	s.release(1) // older than what is kept
	require.Len(t, s.kept, 1)
	require.Equal(t, uint64(4), s.number([][]byte{[]byte("d")}, &o), "the numbering goes on")
	s.release(4)
	require.Empty(t, s.kept)
	require.Zero(t, s.keptBytes)

	// Through a grain: the next connection gets only what the client had
	// not acknowledged.
	g := newSessionGrain(t, GrainOptions{})
	const key = "session-one-1234"
	f1 := conn{name: "f1/1", session: key}
	g.open(f1)
	g.tokens(f1, 1, false, "a", "b")
	f1.written, f1.delivered = 2, 2
	sent, _ := g.tokens(f1, 3, false, "c")
	require.Equal(t, []string{"credit f1/1#3 3:re:c"}, sent)
	// A client that said (wrongly) that it had received only 1 would get
	// re:b again if the grain still kept it: it does not.
	require.Equal(t, []string{"credit f2/1#1 2:re:c"}, g.open(conn{name: "f2/1", session: key, received: 1, written: 1}))
}

// Sessions that sent nothing for SessionTTL are forgotten, and so are the
// connections (a front that died never says they closed); past
// MaxSessions, the least recently used goes.
func TestGrainSessionExpiry(t *testing.T) {
	g := &grain{o: GrainOptions{SessionTTL: time.Minute, MaxSessions: 2}.withDefaults(),
		conns: map[string]*gconn{}, sessions: map[string]*gsession{}}
	t0 := time.Now()
	a, fresh := g.session("a", t0)
	require.True(t, fresh)
	a.took(1)
	g.conns["f1/1"] = &gconn{seen: t0}
	g.session("b", t0.Add(time.Second))
	g.session("a", t0.Add(2*time.Second)) // a is used again
	g.session("c", t0.Add(3*time.Second)) // b goes
	require.Contains(t, g.sessions, "a")
	require.NotContains(t, g.sessions, "b")
	a2, fresh := g.session("a", t0.Add(3*time.Second))
	require.False(t, fresh)
	require.Same(t, a, a2)

	g.sweep(t0.Add(3 * time.Second)) // the first sweep: nothing is old
	require.Len(t, g.sessions, 2)
	g.sweep(t0.Add(3*time.Second + time.Minute)) // a sweep is due; a and c are a minute old, not more
	require.Len(t, g.sessions, 2)
	require.Empty(t, g.conns, "f1/1 sent nothing for over a minute")
	g.sweep(t0.Add(4*time.Second + time.Minute)) // not due yet (a quarter of the TTL)
	require.Len(t, g.sessions, 2)
	g.sweep(t0.Add(4*time.Second + 2*time.Minute))
	require.Empty(t, g.sessions)
}
