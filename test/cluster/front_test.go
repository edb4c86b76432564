//go:build linux

package cluster

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/supervisor"
)

// paced is a client that sends numbered tokens at a steady pace, whatever
// comes back, with reconnection and a reconnect buffer over a server list.
type paced struct {
	id int
	cl *actors.Client

	mu       sync.Mutex
	sent     int            // tokens handed to Send, numbered 1..sent
	cut      int            // sent when the client first saw its connection go (0: never)
	connects int            // OnConnect events
	replies  map[int]int    // replies per token number
	dropped  map[int]string // tokens reported by OnDropped, with the reason
	servers  map[string]int // replies per handler node
	remotes  []string       // the address of each connection
	refused  int            // Send returned false
	dups     []int
	again    time.Time // when the client connected again
}

func startPaced(t *testing.T, e *env, id int, servers []string) *paced {
	t.Helper()
	p := &paced{id: id, replies: map[int]int{}, dropped: map[int]string{}, servers: map[string]int{}}
	pol := supervisor.DefaultPolicy()
	pol.Initial, pol.Max = 20*time.Millisecond, 200*time.Millisecond
	ready := make(chan struct{})
	// token/1: over token/2 a client sends again to the other front what
	// the dead one did not acknowledge, and the grain does not drop those
	// repeats by session yet (issue 29).
	opts := actors.ClientOptions{
		Servers: servers, TLS: e.certs.ClientOptions(), Protocols: []string{actors.ProtocolToken1},
		Runtime:   actors.Runtime{System: actors.NewQuietSystem()},
		Reconnect: &actors.ReconnectOptions{Policy: pol, BufferSize: actors.DefaultReconnectBuffer},
		OnConnect: func() {
			<-ready
			p.mu.Lock()
			defer p.mu.Unlock()
			p.connects++
			if c := p.cl.Connection(); c != nil {
				p.remotes = append(p.remotes, c.RemoteAddr().String())
			}
			if p.connects == 2 {
				p.again = time.Now()
			}
		},
		OnReconnecting: func(int, time.Duration, string) {
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.cut == 0 && p.connects > 0 {
				p.cut = p.sent
			}
		},
		OnToken: func(raw []byte, _ *actors.Connection) {
			tok, node, _ := bytes.Cut(raw, []byte(" @"))
			_, num, _ := bytes.Cut(tok, []byte("-"))
			n, _ := strconv.Atoi(string(num))
			p.mu.Lock()
			defer p.mu.Unlock()
			p.replies[n]++
			if p.replies[n] > 1 {
				p.dups = append(p.dups, n)
			}
			p.servers[string(node)]++
		},
		OnDropped: func(tokens [][]byte, reason error) {
			p.mu.Lock()
			defer p.mu.Unlock()
			for _, tok := range tokens {
				_, num, _ := bytes.Cut(tok, []byte("-"))
				n, _ := strconv.Atoi(string(num))
				p.dropped[n] = reason.Error()
			}
		},
	}
	cl, err := actors.NewClient(opts)
	if err != nil {
		t.Fatal(err)
	}
	p.cl = cl
	close(ready)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := cl.Shutdown(ctx); err != nil {
			t.Errorf("client shutdown: %v", err)
		}
	})
	return p
}

// send sends the next token.
func (p *paced) send() {
	p.mu.Lock()
	p.sent++
	n := p.sent
	p.mu.Unlock()
	if !p.cl.Send([]byte(fmt.Sprintf("c%d-%d", p.id, n))) {
		p.mu.Lock()
		p.refused++
		p.mu.Unlock()
	}
}

// A front node is killed (SIGKILL) while clients send: they reconnect to
// the other front of their server list, the tokens they send meanwhile wait
// in the reconnect buffer and are answered, and no token is answered twice.
// Tokens already written to the dead front when it died may be lost (the
// front holds them in memory only); the test counts them. With either
// membership provider.
func TestFrontNodeFailover(t *testing.T) { providers(t, 4, frontNodeFailover) }

func frontNodeFailover(t *testing.T, e *env) {
	ports := freePorts(t, 2)
	addrs := []string{"127.0.0.1:" + strconv.Itoa(ports[0]), "127.0.0.1:" + strconv.Itoa(ports[1])}
	e.start("handler", "h1")
	e.start("handler", "h2")
	f1 := e.start("front", "f1", "--listen", addrs[0])
	f2 := e.start("front", "f2", "--listen", addrs[1])
	f1.waitLine(t, "listening on", 30*time.Second)
	f2.waitLine(t, "listening on", 30*time.Second)

	const clients, perClient = 6, 1500
	var ps []*paced
	for i := range clients {
		ps = append(ps, startPaced(t, e, i, addrs))
	}
	fronts := map[string]*node{addrs[0]: f1, addrs[1]: f2}
	// Send at a steady pace, one token per client every millisecond;
	// kill the front that serves the most clients after a third.
	var victim string
	killed := time.Time{}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for n := 1; n <= perClient; n++ {
		<-tick.C
		for _, p := range ps {
			p.send()
		}
		if n == perClient/3 {
			count := map[string]int{}
			for _, p := range ps {
				if c := p.cl.Connection(); c != nil {
					count[c.RemoteAddr().String()]++
				}
			}
			victim = addrs[0]
			if count[addrs[1]] > count[addrs[0]] {
				victim = addrs[1]
			}
			t.Logf("clients per front before the kill: %v; killing %s", count, fronts[victim].name)
			killed = time.Now()
			fronts[victim].kill(t)
		}
	}
	// Every client that was on the victim reconnects to the other front,
	// and every token it sent after it saw the cut is answered once.
	deadline := time.Now().Add(30 * time.Second)
	for _, p := range ps {
		for {
			p.mu.Lock()
			wasOnVictim := len(p.remotes) > 0 && p.remotes[0] == victim
			cut, connects := p.cut, p.connects
			missing := 0
			for n := cut + 1; n <= p.sent; n++ {
				if p.replies[n] == 0 && p.dropped[n] == "" {
					missing++
				}
			}
			if cut == 0 { // never cut: every token
				for n := 1; n <= p.sent; n++ {
					if p.replies[n] == 0 && p.dropped[n] == "" {
						missing++
					}
				}
			}
			p.mu.Unlock()
			if (!wasOnVictim || connects >= 2) && missing == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("client %d (first on %s, %d connects, cut after token %d): %d tokens not answered",
					p.id, p.remotes, connects, cut, missing)
			}
			time.Sleep(20 * time.Millisecond) // polling the replies; bounded by the deadline
		}
	}
	lost, switched := 0, 0
	var slowest time.Duration
	for _, p := range ps {
		p.mu.Lock()
		if len(p.dups) > 0 {
			t.Errorf("client %d: tokens answered twice: %v", p.id, p.dups)
		}
		if p.refused > 0 {
			t.Errorf("client %d: %d tokens refused by Send (the reconnect buffer should take them)", p.id, p.refused)
		}
		for n := 1; n <= p.cut; n++ {
			if p.replies[n] == 0 && p.dropped[n] == "" {
				lost++
			}
		}
		if len(p.remotes) >= 2 {
			switched++
			slowest = max(slowest, p.again.Sub(killed))
			if p.remotes[1] == victim {
				t.Errorf("client %d reconnected to the dead front", p.id)
			}
		}
		p.mu.Unlock()
	}
	t.Logf("front %s killed: %d clients reconnected to the other front, the last %v after the kill; %d tokens written to the dead front were lost (at most once); every later one answered once",
		fronts[victim].name, switched, slowest.Round(time.Millisecond), lost)
	if switched == 0 {
		t.Fatal("no client switched fronts")
	}
}
