package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
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
// it handled, and where its Credits come.
type sessionGrain struct {
	t       *testing.T
	system  *actor.ActorSystem
	pid     *actor.PID
	replyTo *actor.PID
	credits chan *clusterpb.Credit
	handled chan handledToken
}

type handledToken struct {
	data        string
	redelivered bool
}

func newSessionGrain(t *testing.T, o GrainOptions) *sessionGrain {
	system := actors.NewQuietSystem()
	t.Cleanup(system.Shutdown)
	g := &sessionGrain{t: t, system: system, credits: make(chan *clusterpb.Credit, 64), handled: make(chan handledToken, 256)}
	g.pid = system.Root.Spawn(grainProps(func(identity string) Handler {
		return HandlerFunc(func(tk *Token) {
			g.handled <- handledToken{string(tk.Data), tk.Redelivered}
			tk.Reply([]byte("re:" + string(tk.Data)))
			if string(tk.Data) == "bye" {
				tk.Close()
			}
		})
	}, o))
	g.replyTo = system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor {
		return collect{one: g.credits, many: make(chan *clusterpb.Credits, 1)}
	}))
	return g
}

// batch sends a token/2 batch of conn (its seq-th) with the session's
// numbers from first, through the wire format, and returns its Credit's
// replies, and what the handler handled meanwhile.
func (g *sessionGrain) batch(conn string, seq uint64, session string, first uint64, redelivered bool, tokens ...string) ([]string, []handledToken) {
	g.t.Helper()
	b := &clusterpb.TokenBatch{Conn: conn, Seq: seq, Acked: seq - 1, ReplyTo: g.replyTo, Identity: "id",
		Session: []byte(session), First: first, Redelivered: redelivered}
	for _, s := range tokens {
		b.Tokens = append(b.Tokens, []byte(s))
	}
	raw, err := proto.Marshal(b)
	require.NoError(g.t, err)
	var back clusterpb.TokenBatch
	require.NoError(g.t, proto.Unmarshal(raw, &back))
	back.ReplyTo = g.replyTo
	g.system.Root.Send(g.pid, &back)
	c := recvCredit(g.t, g.credits)
	require.Equal(g.t, seq, c.Seq)
	var replies []string
	for _, r := range c.Replies {
		replies = append(replies, string(r))
	}
	if c.Close {
		replies = append(replies, "(close)")
	}
	var handled []handledToken
	for {
		select {
		case h := <-g.handled:
			handled = append(handled, h)
		default: // the handler ran before the Credit was sent
			return replies, handled
		}
	}
}

func tokensOf(handled []handledToken) []string {
	var out []string
	for _, h := range handled {
		out = append(out, h.data)
	}
	return out
}

// A token/2 session's tokens are handled once whatever connection (front)
// they come through: the client sends again, through another front, what
// the dead one had not acknowledged, and the grain answers those it had
// handled with the replies it made then, the others as new tokens. Another
// session's numbers are its own.
func TestGrainSessionRepeats(t *testing.T) {
	g := newSessionGrain(t, GrainOptions{})
	const s1, s2 = "session-one-1234", "session-two-1234"

	replies, handled := g.batch("f1/1", 1, s1, 1, false, "a", "b", "c")
	require.Equal(t, []string{"re:a", "re:b", "re:c"}, replies)
	require.Equal(t, []handledToken{{"a", false}, {"b", false}, {"c", false}}, handled)

	// f1 died with b and c not acknowledged; the client resumes on f2 with
	// b, c again, and d.
	replies, handled = g.batch("f2/7", 1, s1, 2, true, "b", "c")
	require.Equal(t, []string{"re:b", "re:c"}, replies, "the replies of the first time, again")
	require.Empty(t, handled, "not handled again")
	replies, handled = g.batch("f2/7", 2, s1, 4, false, "d", "bye")
	require.Equal(t, []string{"re:d", "re:bye", "(close)"}, replies)
	require.Equal(t, []string{"d", "bye"}, tokensOf(handled))

	// It dies again: bye's close comes again with its reply.
	replies, handled = g.batch("f3/2", 1, s1, 5, true, "bye", "e")
	require.Equal(t, []string{"re:bye", "re:e", "(close)"}, replies)
	require.Equal(t, []handledToken{{"e", false}}, handled, "a token after the record's end is new: not flagged")

	// Another session (another client, or another certificate) with the
	// same numbers.
	replies, handled = g.batch("f1/2", 1, s2, 1, false, "x", "y")
	require.Equal(t, []string{"re:x", "re:y"}, replies)
	require.Equal(t, []string{"x", "y"}, tokensOf(handled))

	// token/1 batches (no session) are handled as they come.
	replies, handled = g.batch("f1/3", 1, "", 0, false, "p")
	require.Equal(t, []string{"re:p"}, replies)
	require.Equal(t, []string{"p"}, tokensOf(handled))
	replies, handled = g.batch("f2/3", 1, "", 0, false, "p")
	require.Equal(t, []string{"re:p"}, replies)
	require.Equal(t, []string{"p"}, tokensOf(handled), "token/1: no session, no way to tell a repeat")
}

// A grain that has no record of a session (a new activation, after its
// handler node died) handles the client's tokens sent again, flagged
// Redelivered: they may have been handled before.
func TestGrainSessionUnknown(t *testing.T) {
	g := newSessionGrain(t, GrainOptions{})
	const s = "session-one-1234"
	replies, handled := g.batch("f2/1", 1, s, 7, true, "g", "h")
	require.Equal(t, []string{"re:g", "re:h"}, replies)
	require.Equal(t, []handledToken{{"g", true}, {"h", true}}, handled)
	replies, handled = g.batch("f2/1", 2, s, 9, false, "i")
	require.Equal(t, []string{"re:i"}, replies)
	require.Equal(t, []handledToken{{"i", false}}, handled)
	// From then on the record knows them.
	_, handled = g.batch("f3/1", 1, s, 7, true, "g", "h", "i")
	require.Empty(t, handled)
	// A number before the record's first is handled, flagged; a gap starts
	// the record again (a number never seen is never taken for a repeat).
	_, handled = g.batch("f4/1", 1, s, 5, true, "e")
	require.Equal(t, []handledToken{{"e", true}}, handled)
	_, handled = g.batch("f4/1", 2, s, 20, false, "t")
	require.Equal(t, []handledToken{{"t", false}}, handled)
	_, handled = g.batch("f5/1", 1, s, 12, true, "l")
	require.Equal(t, []handledToken{{"l", true}}, handled, "12 is before the record's new start, 20")
}

// What a grain keeps is bounded: the replies of at most MaxKeptTokens
// tokens (or MaxKeptBytes) per session, the oldest going first; a repeat
// whose replies are gone is dropped without them. A connection's first
// batch tells where its client stands: every reply before it arrived.
func TestGrainSessionKeptBounds(t *testing.T) {
	g := newSessionGrain(t, GrainOptions{MaxKeptTokens: 3})
	const s = "session-one-1234"
	_, handled := g.batch("f1/1", 1, s, 1, false, "1", "2", "3", "4", "5")
	require.Len(t, handled, 5)
	replies, handled := g.batch("f2/1", 1, s, 2, true, "2", "3", "4", "5", "6")
	require.Equal(t, []string{"re:3", "re:4", "re:5", "re:6"}, replies, "2's replies are no longer kept")
	require.Equal(t, []string{"6"}, tokensOf(handled))

	// The client resumes from 5: the replies before are forgotten, and
	// room is made for new ones.
	replies, _ = g.batch("f3/1", 1, s, 5, true, "5")
	require.Equal(t, []string{"re:5"}, replies)
	replies, _ = g.batch("f4/1", 1, s, 4, true, "4")
	require.Empty(t, replies, "forgotten: the client had acknowledged it")

	// Bytes: each reply counts its length and keptOverhead.
	b := newSessionGrain(t, GrainOptions{MaxKeptBytes: 3 * (2*keptOverhead + len("re:1"))})
	b.batch("f1/1", 1, s, 1, false, "1", "2", "3", "4")
	replies, handled = b.batch("f2/1", 1, s, 1, true, "1", "2", "3", "4")
	require.Equal(t, []string{"re:2", "re:3", "re:4"}, replies)
	require.Empty(t, handled)
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
	a.took(1, nil, false, &g.o)
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
