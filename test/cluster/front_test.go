//go:build linux

package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/supervisor"
)

// paced is a client that sends numbered tokens at a steady pace, whatever
// comes back, with reconnection and a reconnect buffer over a server list.
// The handler nodes run with --count, so each reply carries the number of
// tokens the grain had handled when it made it ("c2-17 @h1 #523").
type paced struct {
	id int
	cl *actors.Client

	mu        sync.Mutex
	sent      int            // tokens handed to Send, numbered 1..sent
	cut       int            // sent when the client first saw its connection go (0: never)
	connects  int            // OnConnect events
	protocols []string       // the protocol of each connection
	replies   map[int]int    // replies per token number
	first     map[int]answer // the first reply to each token
	dropped   map[int]error  // tokens reported by OnDropped, with the reason
	remotes   []string       // the address of each connection
	refused   int            // Send returned false
	dups      []dup
	bad       []string  // replies that do not parse
	again     time.Time // when the client connected again
	resumed   time.Time // the first reply after the client saw its first connection go
}

// answer is what a reply says, and when it came.
type answer struct {
	node     string // the handler node
	handled  int    // the grain's count of handled tokens, this one included
	afterCut bool   // it came after the client saw its first connection go
}

// dup is a token answered more than once: its first reply and this one.
type dup struct {
	token       int
	first, then answer
}

func startPaced(t *testing.T, e *env, id int, servers []string, protocols []string) *paced {
	t.Helper()
	p := &paced{id: id, replies: map[int]int{}, first: map[int]answer{}, dropped: map[int]error{}}
	pol := supervisor.DefaultPolicy()
	pol.Initial, pol.Max = 20*time.Millisecond, 200*time.Millisecond
	ready := make(chan struct{})
	opts := actors.ClientOptions{
		Servers: servers, TLS: e.certs.ClientOptions(), Protocols: protocols,
		Runtime:   actors.Runtime{System: actors.NewQuietSystem()},
		Reconnect: &actors.ReconnectOptions{Policy: pol, BufferSize: actors.DefaultReconnectBuffer},
		OnConnect: func() {
			<-ready
			p.mu.Lock()
			defer p.mu.Unlock()
			p.connects++
			if c := p.cl.Connection(); c != nil {
				p.remotes = append(p.remotes, c.RemoteAddr().String())
				p.protocols = append(p.protocols, c.Protocol())
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
		OnToken: func(raw []byte, _ *actors.Connection) { p.reply(raw) },
		OnDropped: func(tokens [][]byte, reason error) {
			p.mu.Lock()
			defer p.mu.Unlock()
			for _, tok := range tokens {
				_, num, _ := bytes.Cut(tok, []byte("-"))
				n, _ := strconv.Atoi(string(num))
				p.dropped[n] = reason
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

// reply records a reply: "c2-17 @h1 #523".
func (p *paced) reply(raw []byte) {
	var n, handled int
	var node string
	_, err := fmt.Sscanf(string(raw), fmt.Sprintf("c%d-%%d @%%s #%%d", p.id), &n, &node, &handled)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.bad = append(p.bad, fmt.Sprintf("%q: %v", raw, err))
		return
	}
	a := answer{node: node, handled: handled, afterCut: p.cut != 0}
	if a.afterCut && p.resumed.IsZero() {
		p.resumed = time.Now()
	}
	p.replies[n]++
	if p.replies[n] > 1 {
		p.dups = append(p.dups, dup{token: n, first: p.first[n], then: a})
		return
	}
	p.first[n] = a
}

// send sends the next token and returns its number.
func (p *paced) send() int {
	p.mu.Lock()
	p.sent++
	n := p.sent
	p.mu.Unlock()
	if !p.cl.Send([]byte(fmt.Sprintf("c%d-%d", p.id, n))) {
		p.mu.Lock()
		p.refused++
		p.mu.Unlock()
	}
	return n
}

// unanswered counts the tokens from..to with no reply and not reported
// dropped.
func (p *paced) unanswered(from, to int) int {
	missing := 0
	for n := from; n <= to; n++ {
		if p.replies[n] == 0 && p.dropped[n] == nil {
			missing++
		}
	}
	return missing
}

// A front node is killed (SIGKILL) while clients send: they reconnect to
// the other front of their server list, and the tokens they send meanwhile
// wait in the reconnect buffer and are answered. With either membership
// provider, and with each protocol:
//
//   - token/2 (what two Go peers speak): each client's session resumes on
//     the other front, which does not know it, so the client sends again
//     every token the dead front had not acknowledged, and the new front
//     numbers its replies on from what the client had received. The grain
//     drops the tokens it had handled (by session and number) and sends,
//     through the new front, only the replies the client had not received
//     (the grain numbers a session's replies as its client receives them).
//     Every token is answered, none is handled twice, nothing is dropped,
//     and no reply arrives twice.
//   - token/1 (the Node original): tokens already written to the dead front
//     when it died may be lost (at most once; the test counts them), every
//     later one is answered once, and none is handled twice.
func TestFrontNodeFailover(t *testing.T) {
	t.Run("token2", func(t *testing.T) {
		providers(t, 4, func(t *testing.T, e *env) { frontNodeFailover(t, e, nil) })
	})
	t.Run("token1", func(t *testing.T) {
		providers(t, 4, func(t *testing.T, e *env) { frontNodeFailover(t, e, []string{actors.ProtocolToken1}) })
	})
}

func frontNodeFailover(t *testing.T, e *env, protocols []string) {
	token2 := len(protocols) == 0
	ports := freePorts(t, 2)
	addrs := []string{"127.0.0.1:" + strconv.Itoa(ports[0]), "127.0.0.1:" + strconv.Itoa(ports[1])}
	h1 := e.start("handler", "h1", "--count")
	h2 := e.start("handler", "h2", "--count")
	f1 := e.start("front", "f1", "--listen", addrs[0])
	f2 := e.start("front", "f2", "--listen", addrs[1])
	f1.waitLine(t, "listening on", 30*time.Second)
	f2.waitLine(t, "listening on", 30*time.Second)
	// Both fronts see both handler nodes before a client sends: a front
	// that saw one only would activate the grain there, and the other
	// front on the other node (two activations, each its own record of
	// the sessions).
	handlers := []string{"member " + h1.remoteAddr(t) + " (handler) joined", "member " + h2.remoteAddr(t) + " (handler) joined"}
	f1.waitLines(t, 30*time.Second, handlers...)
	f2.waitLines(t, 30*time.Second, handlers...)

	const clients, perClient = 6, 1500
	var ps []*paced
	for i := range clients {
		ps = append(ps, startPaced(t, e, i, addrs, protocols))
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
	// Every client that was on the victim reconnects to the other front.
	// token/2: every token is answered; token/1: every token it sent after
	// it saw the cut.
	deadline := time.Now().Add(30 * time.Second)
	for _, p := range ps {
		for {
			p.mu.Lock()
			wasOnVictim := len(p.remotes) > 0 && p.remotes[0] == victim
			cut, connects := p.cut, p.connects
			from := cut + 1
			if token2 || cut == 0 {
				from = 1
			}
			missing := p.unanswered(from, p.sent)
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
	// How many tokens the grain has handled: the number in the reply to a
	// last token, sent once every other was answered.
	probe := ps[0]
	n := probe.send()
	for {
		probe.mu.Lock()
		a, ok := probe.first[n]
		probe.mu.Unlock()
		if ok {
			checkFrontFailover(t, ps, failover{victim: victim, name: fronts[victim].name, killed: killed,
				token2: token2, handled: a.handled, grain: a.node})
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the last token (client 0's %d) was not answered", n)
		}
		time.Sleep(20 * time.Millisecond) // polling the replies; bounded by the deadline
	}
}

// failover is what happened in a front node failover test.
type failover struct {
	victim, name string    // the address and the name of the front killed
	killed       time.Time // when
	token2       bool      // the clients spoke token/2
	handled      int       // the tokens the grain had handled, the last one included
	grain        string    // the node of the grain
}

// checkFrontFailover checks what each client got once every token it must
// have answered was.
func checkFrontFailover(t *testing.T, ps []*paced, f failover) {
	t.Helper()
	victim, token2, handled, grainNode := f.victim, f.token2, f.handled, f.grain
	lost, switched, replayed, resent := 0, 0, 0, int64(0)
	var slowest time.Duration
	var firstReply []time.Duration // per client that saw its connection go: its first reply after the kill
	numbers := map[int]string{}    // handled count -> token
	answered := 0
	for _, p := range ps {
		p.mu.Lock()
		if len(p.bad) > 0 {
			t.Errorf("client %d: replies that do not parse: %v", p.id, p.bad)
		}
		if p.refused > 0 {
			t.Errorf("client %d: %d tokens refused by Send (the reconnect buffer should take them)", p.id, p.refused)
		}
		// token/2 drops nothing. A token/1 client reports the tokens of
		// the write that failed when the front died as maybe sent (they
		// are lost, or handled without a reply): counted with the lost.
		for n, reason := range p.dropped {
			if token2 || !errors.Is(reason, actors.ErrMaybeSent) {
				t.Errorf("client %d: token %d (cut after %d) reported dropped: %v", p.id, n, p.cut, reason)
				continue
			}
			lost++
		}
		for i, proto := range p.protocols {
			if want := map[bool]string{true: actors.ProtocolToken2, false: actors.ProtocolToken1}[token2]; proto != want {
				t.Errorf("client %d: connection %d speaks %s, want %s", p.id, i+1, proto, want)
			}
		}
		// Each token the grain handled has a number of its own, from the
		// one grain (one identity) on one node.
		for n, a := range p.first {
			if a.node != grainNode {
				t.Errorf("client %d: token %d answered on %s, the grain is on %s", p.id, n, a.node, grainNode)
			}
			k := fmt.Sprintf("c%d-%d", p.id, n)
			if other, ok := numbers[a.handled]; ok {
				t.Errorf("tokens %s and %s answered with the same handled count %d", other, k, a.handled)
			}
			numbers[a.handled] = k
			answered++
		}
		// No reply comes twice, with either protocol: token/2's grain sends
		// again only what the client had not received.
		for _, d := range p.dups {
			what := "answered twice"
			if d.first.handled != d.then.handled {
				what = "handled twice"
			}
			t.Errorf("client %d: token %d (cut after %d) %s: %+v, then %+v", p.id, d.token, p.cut, what, d.first, d.then)
		}
		replayed += len(p.dups)
		resent += p.cl.Stats().TokensResent
		if !p.resumed.IsZero() {
			firstReply = append(firstReply, p.resumed.Sub(f.killed))
		}
		if n := p.unanswered(1, p.cut); n > 0 {
			if token2 {
				t.Errorf("client %d: %d tokens sent before the cut not answered", p.id, n)
			}
			lost += n
		}
		if len(p.remotes) >= 2 {
			switched++
			slowest = max(slowest, p.again.Sub(f.killed))
			if p.remotes[1] == victim {
				t.Errorf("client %d reconnected to the dead front", p.id)
			}
		}
		p.mu.Unlock()
	}
	if switched == 0 {
		t.Fatal("no client switched fronts")
	}
	// Every answered token has its own number; token/2: the grain handled
	// exactly those; token/1: those, and at most the lost ones besides
	// (handled, then the reply was lost with the front).
	if token2 && handled != answered {
		t.Errorf("the grain handled %d tokens; %d were answered, each once", handled, answered)
	}
	if !token2 && (handled < answered || handled > answered+lost) {
		t.Errorf("the grain handled %d tokens: %d were answered and %d lost", handled, answered, lost)
	}
	slices.Sort(firstReply)
	if token2 {
		t.Logf("token/2: front %s killed: %d clients reconnected to the other front, the last %v after the kill, and sent %d tokens again; first reply after the kill per client %v; the grain handled %d tokens, %d were answered, %d replies arrived twice",
			f.name, switched, slowest.Round(time.Millisecond), resent, rounded(firstReply), handled, answered, replayed)
		return
	}
	t.Logf("token/1: front %s killed: %d clients reconnected to the other front, the last %v after the kill; first reply after the kill per client %v; %d tokens written to the dead front were lost (at most once; the grain handled %d of them); every later one answered once",
		f.name, switched, slowest.Round(time.Millisecond), rounded(firstReply), lost, handled-answered)
}

// rounded is ds to the millisecond, for a log.
func rounded(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}
