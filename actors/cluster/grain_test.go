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
