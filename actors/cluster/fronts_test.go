package cluster

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/stretchr/testify/require"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/actors/cluster/clusterpb"
	"github.com/tokenserver/tokenserver/supervisor"
	"github.com/tokenserver/tokenserver/tlsio"
)

// freezer is a TCP proxy in front of a token server that can freeze: the
// client's side is reset and the server's stays open, no longer read, as a
// network that fails between a client and a front without the front seeing
// it; from then on it refuses connections. It can also hold what the
// server sends: once gated, it passes the server's TLS records to the
// client one at a time, at each step.
type freezer struct {
	ln       net.Listener
	upstream string
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn // both sides of every connection
	clients  []*net.TCPConn
	frozen   bool
	gated    bool
	steps    chan struct{} // one TLS record through, once gated
	done     chan struct{} // closed by close
}

func startFreezer(t *testing.T, upstream string) *freezer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &freezer{ln: ln, upstream: upstream, steps: make(chan struct{}), done: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *freezer) addr() string { return p.ln.Addr().String() }

func (p *freezer) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.upstream)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.clients = append(p.clients, c.(*net.TCPConn))
		p.mu.Unlock()
		p.wg.Add(2)
		go p.records(c, up)
		go p.pipe(up, c)
	}
}

// records copies the server's TLS records to the client, each once the
// proxy lets it through (at once, until it is gated), until either side
// fails; it closes nothing either.
func (p *freezer) records(dst, src net.Conn) {
	defer p.wg.Done()
	header := make([]byte, 5) // type, version, length
	for {
		if _, err := io.ReadFull(src, header); err != nil {
			return
		}
		record := make([]byte, 5+int(binary.BigEndian.Uint16(header[3:])))
		copy(record, header)
		if _, err := io.ReadFull(src, record[5:]); err != nil {
			return
		}
		p.mu.Lock()
		gated := p.gated
		p.mu.Unlock()
		if gated {
			select {
			case <-p.steps:
			case <-p.done:
				return
			}
		}
		if _, err := dst.Write(record); err != nil {
			return
		}
	}
}

// gate holds the server's records from now on: each waits for a step.
func (p *freezer) gate() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gated = true
}

// step lets the next record the server sends through, and reports false
// when none came within the deadline.
func (p *freezer) step() bool {
	select {
	case p.steps <- struct{}{}:
		return true
	case <-time.After(deadline):
		return false
	}
}

// pipe copies until either side fails, and closes nothing: a frozen
// server side stays open.
func (p *freezer) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
}

// freeze resets the client side of every connection and refuses new ones.
func (p *freezer) freeze() {
	_ = p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.frozen = true
	for _, c := range p.clients {
		_ = c.SetLinger(0) // RST
		_ = c.Close()
	}
}

// close ends everything.
func (p *freezer) close() {
	close(p.done)
	_ = p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// testFront is a front's router and token server in this process, routing
// to the grain that its stub lookup answers.
type testFront struct {
	front *Front
	srv   *actors.Server
}

func startTestFront(t *testing.T, system *actor.ActorSystem, grain *actor.PID, certs *tlsio.DevCerts) *testFront {
	t.Helper()
	return startTestFrontWith(t, system, grain, certs, FrontOptions{MaxBatch: 10})
}

// startTestFrontWith is startTestFront with the front's options o (its
// Cluster and Kind set here).
func startTestFrontWith(t *testing.T, system *actor.ActorSystem, grain *actor.PID, certs *tlsio.DevCerts, o FrontOptions) *testFront {
	t.Helper()
	cl := pcluster.New(system, pcluster.Configure("test", nil, nil, remote.Configure("127.0.0.1", 0)))
	cl.IdentityLookup = &stubLookup{pids: []*actor.PID{grain}}
	o.Cluster, o.Kind = cl, "tokens"
	front, err := NewFront(o)
	require.NoError(t, err)
	up := make(chan struct{}, 1)
	opts, err := front.ServerOptions(actors.ServerOptions{Host: "127.0.0.1", TLS: certs.ServerOptions(),
		OnConnect: func() { up <- struct{}{} }})
	require.NoError(t, err)
	srv, err := actors.NewServer(opts)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		require.NoError(t, srv.Shutdown(ctx))
		front.Stop()
	})
	select {
	case <-up:
	case <-time.After(deadline):
		t.Fatal("not listening")
	}
	return &testFront{front: front, srv: srv}
}

// connectFrontClient connects a client, in an actor system of its own, to
// front with protocols (nil: both), hands each token it receives to
// onToken (if not nil), waits until it is connected, and shuts it down when
// the test ends.
func connectFrontClient(t *testing.T, certs *tlsio.DevCerts, front *testFront, protocols []string, onToken func([]byte)) *actors.Client {
	t.Helper()
	up := make(chan struct{}, 1)
	cl, err := actors.NewClient(actors.ClientOptions{
		Servers: []string{front.srv.Addr().String()}, TLS: certs.ClientOptions(), Protocols: protocols,
		Runtime:   actors.Runtime{System: actors.NewQuietSystem()},
		OnConnect: func() { up <- struct{}{} },
		OnToken: func(tok []byte, _ *actors.Connection) {
			if onToken != nil {
				onToken(tok)
			}
		},
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		require.NoError(t, cl.Shutdown(ctx))
	})
	waitFor(t, up, "no connection")
	return cl
}

// startFailoverClient starts a token/2 client of the fronts behind
// proxies, which reconnects within 50 ms and hands each reply to onToken;
// connects gets one value per connect event. The test's cleanup shuts it
// down.
func startFailoverClient(t *testing.T, certs *tlsio.DevCerts, proxies []*freezer, onToken func([]byte)) (cl *actors.Client, connects chan struct{}) {
	t.Helper()
	connects = make(chan struct{}, 4)
	pol := supervisor.DefaultPolicy()
	pol.Initial, pol.Max = 10*time.Millisecond, 50*time.Millisecond
	var servers []string
	for _, p := range proxies {
		servers = append(servers, p.addr())
	}
	cl, err := actors.NewClient(actors.ClientOptions{
		Servers: servers, TLS: certs.ClientOptions(),
		Runtime:   actors.Runtime{System: actors.NewQuietSystem()},
		Reconnect: &actors.ReconnectOptions{Policy: pol, BufferSize: actors.DefaultReconnectBuffer},
		OnConnect: func() { connects <- struct{}{} },
		OnToken:   func(tok []byte, _ *actors.Connection) { onToken(tok) },
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		require.NoError(t, cl.Shutdown(ctx))
	})
	return cl, connects
}

// proxyOf is the index of the proxy cl is connected through.
func proxyOf(t *testing.T, cl *actors.Client, proxies []*freezer) int {
	t.Helper()
	c := cl.Connection()
	require.NotNil(t, c, "no connection")
	for i, p := range proxies {
		if c.RemoteAddr().String() == p.addr() {
			return i
		}
	}
	t.Fatalf("connected to %s, through no proxy", c.RemoteAddr())
	return -1
}

// waitFor waits for ch, or fails with what.
func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(deadline):
		t.Fatal(what)
	}
}

// A token/2 client whose network to its front fails without the front
// seeing it goes to another front: its session is alive on both. The grain
// is held on the first token meanwhile, so that the old front still sends
// the client's tokens it had read after the session came to the new front.
// The grain sends every reply through the newest connection: each token is
// handled once and each reply reaches the client once.
func TestSessionOnTwoFronts(t *testing.T) {
	system := actors.NewQuietSystem()
	defer system.Shutdown()
	certs, err := tlsio.GenerateDevCerts()
	require.NoError(t, err)

	entered, release := make(chan struct{}), make(chan struct{})
	var hold, released sync.Once
	defer released.Do(func() { close(release) }) // a failed check leaves the grain held
	var mu sync.Mutex
	handled := map[string]int{}
	grain := system.Root.Spawn(grainProps(func(string) Handler {
		return HandlerFunc(func(tk *Token) {
			if string(tk.Data) == "t1" {
				hold.Do(func() { close(entered) })
				<-release
			}
			mu.Lock()
			handled[string(tk.Data)]++
			mu.Unlock()
			tk.Reply([]byte("re:" + string(tk.Data)))
		})
	}, GrainOptions{}))
	fronts := []*testFront{startTestFront(t, system, grain, certs), startTestFront(t, system, grain, certs)}
	proxies := []*freezer{startFreezer(t, fronts[0].srv.Addr().String()), startFreezer(t, fronts[1].srv.Addr().String())}

	const tokens = 200
	replies := map[string]int{}
	all := make(chan struct{})
	cl, connects := startFailoverClient(t, certs, proxies, func(tok []byte) {
		mu.Lock()
		defer mu.Unlock()
		replies[string(tok)]++
		if len(replies) == tokens {
			close(all)
		}
	})
	waitFor(t, connects, "no connection")
	old := proxyOf(t, cl, proxies)
	for i := 1; i <= tokens; i++ {
		require.True(t, cl.Send([]byte(fmt.Sprintf("t%d", i))))
	}
	waitFor(t, entered, "the grain never got the first token")
	// The old front holds more tokens than it could forward while the
	// grain is held (GrainWindow messages): it forwards them after the
	// switch.
	require.Eventually(t, func() bool {
		return fronts[old].srv.Stats().TokensReceived > fronts[old].front.Stats().Forwarded
	}, deadline, time.Millisecond, "the old front holds no token it has not forwarded")

	proxies[old].freeze()
	waitFor(t, connects, "the client did not connect again")
	require.Equal(t, proxies[1-old].addr(), cl.Connection().RemoteAddr().String())
	newFront, oldFront := fronts[1-old].front, fronts[old].front
	require.Eventually(t, func() bool { return newFront.Stats().Messages > 0 }, deadline, time.Millisecond,
		"the new front told the grain of the session")
	atSwitch := oldFront.Stats().Forwarded
	released.Do(func() { close(release) })

	waitFor(t, all, "not every token answered")
	// The last replies may still come: wait until both fronts have handed
	// over every reply the grain made, then check.
	require.Eventually(t, func() bool {
		return oldFront.Stats().Replies+newFront.Stats().Replies >= tokens
	}, deadline, time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i <= tokens; i++ {
		k := fmt.Sprintf("t%d", i)
		require.Equal(t, 1, handled[k], "%s handled", k)
		require.Equal(t, 1, replies["re:"+k], "replies to %s", k)
	}
	require.Len(t, replies, tokens)
	t.Logf("the old front forwarded %d tokens before the switch, %d in all; the new front %d; replies through the old %d, the new %d",
		atSwitch, oldFront.Stats().Forwarded, newFront.Stats().Forwarded, oldFront.Stats().Replies, newFront.Stats().Replies)
	require.Greater(t, oldFront.Stats().Forwarded, atSwitch, "the old front sent tokens after the session moved")
}

// A token/2 client that had read a reply from its front, but not the
// front's acknowledgement of the token it answers, when the front became
// unreachable: it sends the token again through another front. The grain
// handles it once (it is a repeat) and sends nothing for it again: the new
// front's connection said that the client had received the reply.
//
// The front writes a reply before it acknowledges its token, usually in
// another TLS record, which the test lets through alone; when the front
// wrote both in one record (its writer was busy), the client has nothing to
// send again, and the test tries again with another client.
func TestReplyReadBeforeItsAcknowledgement(t *testing.T) {
	system := actors.NewQuietSystem()
	defer system.Shutdown()
	certs, err := tlsio.GenerateDevCerts()
	require.NoError(t, err)
	const attempts = 8
	for i := range attempts {
		r := replyBeforeAck(t, system, certs)
		if r.resent == 0 {
			t.Logf("attempt %d: the acknowledgement came with the reply", i+1)
			continue
		}
		require.Equal(t, map[string]int{"a": 1, "b": 1, "c": 1}, r.handled, "tokens handled")
		require.Equal(t, map[string]int{"re:a": 1, "re:b": 1, "re:c": 1}, r.replies, "replies received")
		return
	}
	t.Fatalf("in %d attempts, the front never wrote a reply in a TLS record without its token's acknowledgement", attempts)
}

// replyRun is what one attempt of TestReplyReadBeforeItsAcknowledgement
// saw: the tokens its grain handled, the replies its client received, and
// how many tokens the client sent again.
type replyRun struct {
	handled, replies map[string]int
	resent           int64
}

// replyBeforeAck runs a grain behind two fronts, each behind a freezer, and
// a client that sends a, then b, reads the reply to b and not what the
// front writes after it (the acknowledgement of b), goes to the other front
// and sends c; it returns when the reply to c came.
func replyBeforeAck(t *testing.T, system *actor.ActorSystem, certs *tlsio.DevCerts) replyRun {
	t.Helper()
	var mu sync.Mutex
	r := replyRun{handled: map[string]int{}, replies: map[string]int{}}
	grain := system.Root.Spawn(grainProps(func(string) Handler {
		return HandlerFunc(func(tk *Token) {
			mu.Lock()
			r.handled[string(tk.Data)]++
			mu.Unlock()
			tk.Reply([]byte("re:" + string(tk.Data)))
		})
	}, GrainOptions{}))
	fronts := []*testFront{startTestFront(t, system, grain, certs), startTestFront(t, system, grain, certs)}
	proxies := []*freezer{startFreezer(t, fronts[0].srv.Addr().String()), startFreezer(t, fronts[1].srv.Addr().String())}

	got := make(chan string, 16)
	cl, connects := startFailoverClient(t, certs, proxies, func(tok []byte) {
		mu.Lock()
		r.replies[string(tok)]++
		mu.Unlock()
		got <- string(tok)
	})
	reply := func(want string, within time.Duration) bool {
		t.Helper()
		timeout := time.After(within)
		for {
			select {
			case r := <-got:
				if r == want {
					return true
				}
			case <-timeout:
				return false
			}
		}
	}
	waitFor(t, connects, "no connection")
	old := proxyOf(t, cl, proxies)
	require.True(t, cl.Send([]byte("a")))
	require.True(t, reply("re:a", deadline), "no reply to a")

	// The old front's records reach the client one by one, up to the one
	// with the reply to b.
	proxies[old].gate()
	require.True(t, cl.Send([]byte("b")))
	for records := 0; ; records++ {
		require.Less(t, records, 20, "no reply to b in the old front's records")
		require.True(t, proxies[old].step(), "the old front wrote nothing more")
		if reply("re:b", 500*time.Millisecond) {
			break
		}
	}
	proxies[old].freeze()
	waitFor(t, connects, "the client did not connect again")
	require.Equal(t, proxies[1-old].addr(), cl.Connection().RemoteAddr().String())

	// The replies stay in order: once the reply to c came, any copy of the
	// reply to b would have come before it. (c waits until the token sent
	// again has reached the new front: a token/2 client that sends at once
	// after its connect event may write the new token ahead of those it
	// sends again, which the grain then takes for repeats.)
	resent := cl.Stats().TokensResent
	require.Eventually(t, func() bool { return fronts[1-old].srv.Stats().TokensReceived >= resent }, deadline, time.Millisecond,
		"the tokens sent again did not reach the new front")
	require.True(t, cl.Send([]byte("c")))
	require.True(t, reply("re:c", deadline), "no reply to c")
	mu.Lock()
	defer mu.Unlock()
	r.resent = resent
	return r
}

// fakeGrain answers each token/2 batch with one reply per token, numbered
// on from the batch's written, and hands every batch to a channel.
type fakeGrain chan *clusterpb.TokenBatch

func (g fakeGrain) Receive(ctx actor.Context) {
	answer := func(b *clusterpb.TokenBatch) *clusterpb.Credit {
		g <- b
		c := &clusterpb.Credit{Conn: b.Conn, Seq: b.Seq, Identity: b.Identity}
		for _, tok := range b.Tokens {
			c.Replies = append(c.Replies, append([]byte("re:"), tok...))
		}
		if len(c.Replies) > 0 {
			c.ReplyFrom = b.Written + 1
		}
		return c
	}
	switch m := ctx.Message().(type) {
	case *clusterpb.TokenBatch:
		ctx.Send(m.ReplyTo, answer(m))
	case *clusterpb.TokenBatches:
		out := &clusterpb.Credits{}
		for _, b := range m.Batches {
			out.Credits = append(out.Credits, answer(b))
		}
		ctx.Send(m.Batches[0].ReplyTo, out)
	}
}

// A front tells the grain, in a token/2 connection's batches, up to which
// reply the client has acknowledged (delivered): once the client has
// acknowledged what was written to it, the next batch says so.
func TestFrontReportsDelivered(t *testing.T) {
	system := actors.NewQuietSystem()
	defer system.Shutdown()
	certs, err := tlsio.GenerateDevCerts()
	require.NoError(t, err)
	batches := make(fakeGrain, 64)
	grain := system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return batches }))
	front := startTestFront(t, system, grain, certs)

	got := make(chan string, 64)
	cl := connectFrontClient(t, certs, front, nil, func(tok []byte) { got <- string(tok) })
	next := func() *clusterpb.TokenBatch {
		t.Helper()
		select {
		case b := <-batches:
			return b
		case <-time.After(deadline):
			t.Fatal("no batch")
			return nil
		}
	}
	announce := next()
	require.Empty(t, announce.Tokens, "a token/2 connection's first batch")
	require.Zero(t, announce.Delivered)
	// Each round the client has the replies of the rounds before; the
	// front sees it once the client's acknowledgement came before the
	// next token (it rides with it, or comes after the ACK delay).
	for round := 1; ; round++ {
		require.LessOrEqual(t, round, 50, "no batch ever said that the client had acknowledged its replies")
		tok := strconv.Itoa(round)
		require.True(t, cl.Send([]byte(tok)))
		b := next()
		require.Equal(t, [][]byte{[]byte(tok)}, b.Tokens)
		require.Equal(t, uint64(round-1), b.Written, "the replies written before")
		require.LessOrEqual(t, b.Delivered, b.Written)
		select {
		case r := <-got:
			require.Equal(t, "re:"+tok, r)
		case <-time.After(deadline):
			t.Fatal("no reply")
		}
		if round > 1 && b.Delivered == b.Written {
			return
		}
	}
}
