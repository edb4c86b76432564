package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/require"
	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/actors/cluster/clusterpb"
	"github.com/tokenserver/tokenserver/tlsio"
)

// repeatingGrain answers each batch with every reply it has made so far,
// numbered from the session's first (ReplyFrom 1), as a grain does when it
// sends a session's replies again (after a front was lost): the front must
// write only those it has not written.
type repeatingGrain struct{ replies [][]byte }

func (g *repeatingGrain) Receive(ctx actor.Context) {
	b, ok := ctx.Message().(*clusterpb.TokenBatch)
	if !ok {
		return
	}
	for _, tok := range b.Tokens {
		g.replies = append(g.replies, append([]byte("re:"), tok...))
	}
	c := &clusterpb.Credit{Conn: b.Conn, Seq: b.Seq, Identity: b.Identity}
	if len(g.replies) > 0 {
		c.Replies, c.ReplyFrom = g.replies, 1
	}
	ctx.Send(b.ReplyTo, c)
}

// A token/2 session's replies that the front has written already are not
// written again when the grain sends them again: the client gets each
// reply once, in order.
func TestFrontSkipsRepliesWrittenAlready(t *testing.T) {
	const rounds = 4
	system := actors.NewQuietSystem()
	defer system.Shutdown()
	certs, err := tlsio.GenerateDevCerts()
	require.NoError(t, err)
	grain := system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &repeatingGrain{} }))
	front := startTestFrontWith(t, system, grain, certs, FrontOptions{MaxBatch: 1})

	got := make(chan string, 4*rounds)
	cl := connectFrontClient(t, certs, front, nil, func(tok []byte) { got <- string(tok) })
	require.Equal(t, "token/2", cl.Connection().Protocol())
	for round := range rounds {
		tok := fmt.Sprint("t", round)
		require.True(t, cl.Send([]byte(tok)))
		select {
		case r := <-got:
			require.Equal(t, "re:"+tok, r, "round %d: the next reply", round)
		case <-time.After(deadline):
			t.Fatalf("round %d: no reply", round)
		}
	}
	require.EqualValues(t, rounds, front.front.Stats().Replies, "replies handed to the connection")
}
