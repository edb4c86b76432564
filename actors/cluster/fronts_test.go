package cluster

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/stretchr/testify/require"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/supervisor"
	"github.com/tokenserver/tokenserver/tlsio"
)

// freezer is a TCP proxy in front of a token server that can freeze: the
// client's side is reset and the server's stays open, no longer read, as a
// network that fails between a client and a front without the front seeing
// it; from then on it refuses connections.
type freezer struct {
	ln       net.Listener
	upstream string
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn // both sides of every connection
	clients  []*net.TCPConn
	frozen   bool
}

func startFreezer(t *testing.T, upstream string) *freezer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &freezer{ln: ln, upstream: upstream}
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
		go p.pipe(up, c)
		go p.pipe(c, up)
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
	cl := pcluster.New(system, pcluster.Configure("test", nil, nil, remote.Configure("127.0.0.1", 0)))
	cl.IdentityLookup = &stubLookup{pids: []*actor.PID{grain}}
	front, err := NewFront(FrontOptions{Cluster: cl, Kind: "tokens", MaxBatch: 10})
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
	connects := make(chan struct{}, 4)
	all := make(chan struct{})
	pol := supervisor.DefaultPolicy()
	pol.Initial, pol.Max = 10*time.Millisecond, 50*time.Millisecond
	cl, err := actors.NewClient(actors.ClientOptions{
		Servers: []string{proxies[0].addr(), proxies[1].addr()}, TLS: certs.ClientOptions(),
		Runtime:   actors.Runtime{System: actors.NewQuietSystem()},
		Reconnect: &actors.ReconnectOptions{Policy: pol, BufferSize: actors.DefaultReconnectBuffer},
		OnConnect: func() { connects <- struct{}{} },
		OnToken: func(tok []byte, _ *actors.Connection) {
			mu.Lock()
			defer mu.Unlock()
			replies[string(tok)]++
			if len(replies) == tokens {
				close(all)
			}
		},
	})
	require.NoError(t, err)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		require.NoError(t, cl.Shutdown(ctx))
	}()
	wait := func(ch <-chan struct{}, what string) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(deadline):
			t.Fatal(what)
		}
	}
	wait(connects, "no connection")
	old := 0
	if c := cl.Connection(); c != nil && c.RemoteAddr().String() == proxies[1].addr() {
		old = 1
	}
	for i := 1; i <= tokens; i++ {
		require.True(t, cl.Send([]byte(fmt.Sprintf("t%d", i))))
	}
	wait(entered, "the grain never got the first token")
	// The old front holds more tokens than it could forward while the
	// grain is held (GrainWindow messages): it forwards them after the
	// switch.
	require.Eventually(t, func() bool {
		return fronts[old].srv.Stats().TokensReceived > fronts[old].front.Stats().Forwarded
	}, deadline, time.Millisecond, "the old front holds no token it has not forwarded")

	proxies[old].freeze()
	wait(connects, "the client did not connect again")
	require.Equal(t, proxies[1-old].addr(), cl.Connection().RemoteAddr().String())
	newFront, oldFront := fronts[1-old].front, fronts[old].front
	require.Eventually(t, func() bool { return newFront.Stats().Messages > 0 }, deadline, time.Millisecond,
		"the new front told the grain of the session")
	atSwitch := oldFront.Stats().Forwarded
	released.Do(func() { close(release) })

	wait(all, "not every token answered")
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
