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
	"github.com/tokenserver/tokenserver/wire"
)

// heldGrain hands the batches it takes to got and answers none until it
// is sent release; from then on it answers every batch, those it held
// first.
type heldGrain struct {
	got       chan *clusterpb.TokenBatch
	held      []*clusterpb.TokenBatch
	answering bool
}

// release makes a heldGrain answer.
type release struct{}

func (g *heldGrain) Receive(ctx actor.Context) {
	var in []*clusterpb.TokenBatch
	switch m := ctx.Message().(type) {
	case *clusterpb.TokenBatch:
		in = []*clusterpb.TokenBatch{m}
	case *clusterpb.TokenBatches:
		in = m.Batches
	case release:
		g.answering = true
	}
	for _, b := range in {
		g.got <- b
	}
	g.held = append(g.held, in...)
	if g.answering {
		for _, b := range g.held {
			ctx.Send(b.ReplyTo, &clusterpb.Credit{Conn: b.Conn, Seq: b.Seq, Identity: b.Identity})
		}
		g.held = nil
	}
}

// A connection has at most FrontOptions.Window batches awaiting their
// Credit: with a grain that answers none, the front sends Window batches
// of a connection's pipelined tokens and holds the rest; once the grain
// answers, the rest follows.
func TestFrontWindowBoundsBatchesInFlight(t *testing.T) {
	const window, tokens = 2, 16
	system := actors.NewQuietSystem()
	defer system.Shutdown()
	certs, err := tlsio.GenerateDevCerts()
	require.NoError(t, err)
	g := &heldGrain{got: make(chan *clusterpb.TokenBatch, tokens)}
	grain := system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return g }))
	// One token a batch, and room for every batch in the grain's window:
	// only Window holds them.
	front := startTestFrontWith(t, system, grain, certs, FrontOptions{MaxBatch: 1, Window: window, GrainWindow: tokens})

	// token/1: no session, so every batch carries tokens. One SendBatch,
	// so that the tokens arrive in one read: the front reads at most
	// ReadWindow chunks while it holds tokens, and 16 Sends could come in
	// more (one run in ten or twenty under -race did).
	cl := connectFrontClient(t, certs, front, []string{wire.ProtocolToken1}, nil)
	toks := make([][]byte, tokens)
	for i := range toks {
		toks[i] = []byte(fmt.Sprint("t", i))
	}
	require.True(t, cl.Connection().SendBatch(toks))
	require.Eventually(t, func() bool { return front.srv.Stats().TokensReceived == tokens }, deadline, time.Millisecond,
		"the front read every token")
	next := func(i int) {
		t.Helper()
		select {
		case b := <-g.got:
			require.Equal(t, [][]byte{[]byte(fmt.Sprint("t", i))}, b.Tokens, "batch %d", i)
		case <-time.After(deadline):
			t.Fatalf("batch %d never came", i)
		}
	}
	for i := range window {
		next(i)
	}
	// Nothing more comes while no Credit does (a bounded quiet period).
	select {
	case b := <-g.got:
		t.Fatalf("a batch beyond the window of %d: %q", window, b.Tokens)
	case <-time.After(200 * time.Millisecond):
	}
	require.EqualValues(t, window, front.front.Stats().Forwarded)

	system.Root.Send(grain, release{})
	for i := window; i < tokens; i++ {
		next(i)
	}
	require.EqualValues(t, tokens, front.front.Stats().Forwarded)
}
