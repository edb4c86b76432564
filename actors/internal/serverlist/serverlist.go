// Package serverlist is a client's list of servers (ClientOptions.Servers in
// package actors): each connect attempt takes the next server of a random
// order, which is shuffled again once every server was tried, and a new
// round never starts with the server just tried (nats.go's server pool does
// the same).
package serverlist

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
)

// List is a client's servers. It is safe for concurrent use: each
// incarnation of a client's connection actor takes the next server.
type List struct {
	mu    sync.Mutex
	addrs []string
	pos   int
	last  string // the server of the latest attempt
}

// New checks servers (host:port each) and returns them as a List.
func New(servers []string) (*List, error) {
	l := &List{}
	for _, s := range servers {
		_, port, err := net.SplitHostPort(s)
		if err != nil {
			return nil, fmt.Errorf("server %q: %w", s, err)
		}
		if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
			return nil, fmt.Errorf("server %q: port out of range", s)
		}
		l.addrs = append(l.addrs, s)
	}
	l.pos = len(l.addrs) // shuffle before the first attempt
	return l, nil
}

// Next returns the server of the next connect attempt.
func (l *List) Next() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pos >= len(l.addrs) {
		rand.Shuffle(len(l.addrs), func(i, j int) { l.addrs[i], l.addrs[j] = l.addrs[j], l.addrs[i] })
		if len(l.addrs) > 1 && l.addrs[0] == l.last {
			// Not the server that was just tried, first again.
			k := 1 + rand.IntN(len(l.addrs)-1)
			l.addrs[0], l.addrs[k] = l.addrs[k], l.addrs[0]
		}
		l.pos = 0
	}
	l.last = l.addrs[l.pos]
	l.pos++
	return l.last
}
