//go:build linux

package cluster

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/supervisor"
)

// load is a set of clients that send numbered tokens ("c2-17") through the
// cluster, each keeping window tokens outstanding, and count the replies
// ("c2-17 @h1") per token.
type load struct {
	t       *testing.T
	clients []*actors.Client
	total   int

	mu       sync.Mutex
	count    map[string]int    // replies per token
	node     map[string]string // node that answered each token
	got      int               // distinct tokens answered
	dups     []string
	byNode   map[string]int
	last     string // node of the latest reply
	watchFor string // record the first reply from a node other than this
	firstNew time.Time
	newNode  string
	allDone  chan struct{}
	progress *sync.Cond
	sent     int // tokens handed to Send
}

type loadOptions struct {
	clients, perClient, window int
	servers                    []string // host:port, several for a server list
	reconnect                  bool
}

func startLoad(t *testing.T, e *env, o loadOptions) *load {
	t.Helper()
	l := &load{t: t, total: o.clients * o.perClient, count: map[string]int{}, node: map[string]string{},
		byNode: map[string]int{}, allDone: make(chan struct{})}
	l.progress = sync.NewCond(&l.mu)
	for i := range o.clients {
		next, started := 0, false
		var cl *actors.Client
		ready := make(chan struct{}) // cl is set
		send := func() {             // the next token of client i; called with the window's slot free
			l.mu.Lock()
			if next >= o.perClient {
				l.mu.Unlock()
				return
			}
			next++
			tok := fmt.Sprintf("c%d-%d", i, next)
			l.sent++
			l.mu.Unlock()
			<-ready // a callback may run before NewClient returns
			if !cl.Send([]byte(tok)) {
				t.Errorf("client %d: Send(%s) refused", i, tok)
			}
		}
		host, portStr, _ := net.SplitHostPort(o.servers[0])
		port, _ := strconv.Atoi(portStr)
		opts := actors.ClientOptions{
			Host: host, Port: port, TLS: e.certs.ClientOptions(),
			Runtime: actors.Runtime{System: actors.NewQuietSystem()},
			OnToken: func(tok []byte, _ *actors.Connection) {
				l.reply(tok)
				send()
			},
			OnConnect: func() {
				if !started {
					started = true
					for range o.window {
						send()
					}
				}
			},
		}
		if len(o.servers) > 1 {
			opts.Host, opts.Port, opts.Servers = "", 0, o.servers
		}
		if o.reconnect {
			p := supervisor.DefaultPolicy()
			p.Initial, p.Max = 20*time.Millisecond, 200*time.Millisecond
			opts.Reconnect = &actors.ReconnectOptions{Policy: p, BufferSize: actors.DefaultReconnectBuffer}
		}
		var err error
		cl, err = actors.NewClient(opts)
		if err != nil {
			t.Fatal(err)
		}
		close(ready)
		l.clients = append(l.clients, cl)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := cl.Shutdown(ctx); err != nil {
				t.Errorf("client shutdown: %v", err)
			}
		})
	}
	return l
}

func (l *load) reply(raw []byte) {
	tok, node, ok := bytes.Cut(raw, []byte(" @"))
	l.mu.Lock()
	defer l.mu.Unlock()
	if !ok {
		l.dups = append(l.dups, "malformed reply "+string(raw))
		return
	}
	k := string(tok)
	l.count[k]++
	if l.count[k] > 1 {
		l.dups = append(l.dups, k)
		return
	}
	n := string(node)
	l.node[k] = n
	l.byNode[n]++
	l.last = n
	l.got++
	if l.watchFor != "" && n != l.watchFor && l.firstNew.IsZero() {
		l.firstNew, l.newNode = time.Now(), n
	}
	l.progress.Broadcast()
	if l.got == l.total {
		close(l.allDone)
	}
}

// waitGot waits until n tokens have their reply.
func (l *load) waitGot(n int, within time.Duration) {
	l.t.Helper()
	deadline := time.Now().Add(within)
	timer := time.AfterFunc(within, func() { l.mu.Lock(); l.progress.Broadcast(); l.mu.Unlock() })
	defer timer.Stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.got < n {
		if time.Now().After(deadline) {
			l.t.Fatalf("%d of %d replies after %v", l.got, n, within)
		}
		l.progress.Wait()
	}
}

// check waits for every reply and checks that each token got exactly one.
func (l *load) check(within time.Duration) {
	l.t.Helper()
	select {
	case <-l.allDone:
	case <-time.After(within):
		l.mu.Lock()
		var missing []string
		for i := range len(l.clients) {
			for n := 1; n <= l.total/len(l.clients); n++ {
				if k := fmt.Sprintf("c%d-%d", i, n); l.count[k] == 0 && len(missing) < 10 {
					missing = append(missing, k)
				}
			}
		}
		l.mu.Unlock()
		l.t.Fatalf("%d of %d tokens answered after %v; some missing: %v", l.got, l.total, within, missing)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.dups) > 0 {
		l.t.Fatalf("%d duplicate replies, first: %v", len(l.dups), l.dups[:min(10, len(l.dups))])
	}
}

// A handler node that holds a busy grain is killed (SIGKILL): the front
// looks the grain up again once the node left the membership, sends what
// was not credited to the new activation on the other handler node, and
// every token gets exactly one reply. The front's metrics, scraped over
// HTTP (--metrics), count the remote path: tokens forwarded and replies,
// batches sent again, lookups, the failover. With either membership
// provider: automanaged (the node leaves within about one refresh) and etcd
// (when its lease of 3 s expires).
func TestHandlerNodeFailover(t *testing.T) { providers(t, 3, handlerNodeFailover) }

func handlerNodeFailover(t *testing.T, e *env) {
	listen := "127.0.0.1:" + strconv.Itoa(freePorts(t, 1)[0])
	// Slow grains (200 µs a token) keep the load running across the kill.
	h1 := e.start("handler", "h1", "--delay", "200us")
	h2 := e.start("handler", "h2", "--delay", "200us")
	f1 := e.start("front", "f1", "--listen", listen, "--metrics", "127.0.0.1:0")
	f1.waitLine(t, "listening on", 30*time.Second)
	metrics := f1.metricsURL(t)
	h1.waitLine(t, "joined the cluster", 10*time.Second)
	h2.waitLine(t, "joined the cluster", 10*time.Second)

	// Every client has the same certificate: one identity, one grain.
	l := startLoad(t, e, loadOptions{clients: 4, perClient: 2500, window: 32, servers: []string{listen}})
	l.waitGot(l.total/4, 30*time.Second)
	l.mu.Lock()
	holder := l.last
	l.watchFor = holder
	l.mu.Unlock()
	victim := map[string]*node{"h1": h1, "h2": h2}[holder]
	if victim == nil {
		t.Fatalf("replies come from %q, not a handler node", holder)
	}
	killed := time.Now()
	victim.kill(t)
	l.check(60 * time.Second)

	l.mu.Lock()
	failover := l.firstNew.Sub(killed)
	t.Logf("killed %s holding the busy grain; first reply from the new activation on %s %v after the kill; replies per node %v",
		holder, l.newNode, failover.Round(time.Millisecond), l.byNode)
	l.mu.Unlock()
	line := f1.waitLine(t, "failover of grain", 10*time.Second)
	t.Logf("front: %s", line)
	if failover <= 0 {
		t.Fatalf("no reply from another node after the kill")
	}

	// Every token was read, forwarded once (batches sent again are counted
	// apart) and answered once, on 4 connections; the loss made the front
	// look the grain up again, send batches again and count a failover.
	fams := scrapeFront(t, metrics)
	total := float64(l.total)
	for _, w := range []struct {
		name  string
		value float64
	}{
		{"tokenserver_received_tokens_total", total},
		{"tokenserver_cluster_forwarded_tokens_total", total},
		{"tokenserver_cluster_reply_tokens_total", total},
		{"tokenserver_cluster_connections_routed_total", 4},
		{"tokenserver_connections_opened_total", 4},
	} {
		if v := metricValue(t, fams, w.name); v != w.value {
			t.Errorf("%s = %v, want %v", w.name, v, w.value)
		}
	}
	for _, w := range []struct {
		name string
		min  float64
	}{
		{"tokenserver_cluster_failovers_total", 1},
		{"tokenserver_cluster_resent_batches_total", 1},
		{"tokenserver_cluster_lookups_total", 2},
		{"tokenserver_cluster_forwarded_batches_total", 1},
	} {
		if v := metricValue(t, fams, w.name); v < w.min {
			t.Errorf("%s = %v, want at least %v", w.name, v, w.min)
		}
	}
	batches := metricValue(t, fams, "tokenserver_cluster_forwarded_batches_total")
	resent := metricValue(t, fams, "tokenserver_cluster_resent_batches_total")
	if msgs := metricValue(t, fams, "tokenserver_cluster_sent_messages_total"); msgs < 1 || msgs > batches+resent {
		t.Errorf("tokenserver_cluster_sent_messages_total = %v, want 1 to %v (batches and batches sent again)", msgs, batches+resent)
	}
	t.Logf("front metrics: %v batches in %v messages, %v sent again, %v lookups, %v duplicate credits",
		batches, metricValue(t, fams, "tokenserver_cluster_sent_messages_total"), resent,
		metricValue(t, fams, "tokenserver_cluster_lookups_total"), metricValue(t, fams, "tokenserver_cluster_duplicate_credits_total"))
}
