package actors

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
)

// serverPool is ClientOptions.Servers: each connect attempt takes the next
// server of a random order, which is shuffled again once every server was
// tried (nats.go's server pool does the same).
type serverPool struct {
	mu    sync.Mutex
	addrs []string
	pos   int
	last  string // the server of the latest attempt
}

func newServerPool(servers []string) (*serverPool, error) {
	p := &serverPool{}
	for _, s := range servers {
		_, port, err := net.SplitHostPort(s)
		if err != nil {
			return nil, fmt.Errorf("%w: server %q: %w", ErrInvalidOptions, s, err)
		}
		if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
			return nil, fmt.Errorf("%w: server %q: port out of range", ErrInvalidOptions, s)
		}
		p.addrs = append(p.addrs, s)
	}
	p.pos = len(p.addrs) // shuffle before the first attempt
	return p, nil
}

// next returns the server of the next connect attempt.
func (p *serverPool) next() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pos >= len(p.addrs) {
		rand.Shuffle(len(p.addrs), func(i, j int) { p.addrs[i], p.addrs[j] = p.addrs[j], p.addrs[i] })
		if len(p.addrs) > 1 && p.addrs[0] == p.last {
			// Not the server that was just tried, first again.
			k := 1 + rand.IntN(len(p.addrs)-1)
			p.addrs[0], p.addrs[k] = p.addrs[k], p.addrs[0]
		}
		p.pos = 0
	}
	p.last = p.addrs[p.pos]
	p.pos++
	return p.last
}

// withServer returns cfg for one connect attempt: with a server list, its
// dial target is the pool's next server.
func (cfg connConfig) withServer() connConfig {
	if cfg.dial != nil && cfg.dial.pool != nil {
		d := *cfg.dial
		d.addr = d.pool.next()
		cfg.dial = &d
	}
	return cfg
}
