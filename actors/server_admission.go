package actors

import (
	"crypto/tls"
	"fmt"
	"net"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
)

// admission is the server actor's account of who may connect, so that a
// crowd of connections cannot take the server from everybody:
//
//   - connections still in their TLS handshake (pending) have a budget of
//     their own, in total (MaxPending) and per remote address
//     (MaxPendingPerAddr): a socket over it is closed at once. An address
//     that holds its whole budget does not keep another address out;
//   - authenticated connections count against MaxConnections, checked when
//     their handshake is done;
//   - the CPU-heavy part of a handshake (the server's key exchange and
//     signature, milliseconds with RSA 4096 keys) runs for at most
//     MaxHandshakes connections at once. A connection asks for a slot once
//     the client's hello has arrived (a silent socket holds none) and gives
//     it back as soon as the server's flight is written and it waits for the
//     client again. A flood of handshakes slows new handshakes, not the
//     established connections.
type admission struct {
	maxConns, maxPending, maxPerAddr, maxHandshakes int

	live     int
	pending  map[*Connection]string // connection in its handshake -> its address
	perAddr  map[string]int
	slots    map[*Connection]bool // holds a handshake slot
	waiting  []slotRequest        // asked for a slot, in order
	refusals atomic.Uint64        // pending connections refused (for Stats)
}

// slotRequest asks the server actor for a handshake slot; grant is closed
// when the slot is given.
type slotRequest struct {
	c     *Connection
	grant chan struct{}
}

// slotDone gives a handshake slot back: the server's flight is written.
type slotDone struct{ c *Connection }

func newAdmission(o ServerOptions) *admission {
	return &admission{
		maxConns: o.MaxConnections, maxPending: o.MaxPending, maxPerAddr: o.MaxPendingPerAddr,
		maxHandshakes: o.MaxHandshakes,
		pending:       map[*Connection]string{}, perAddr: map[string]int{}, slots: map[*Connection]bool{},
	}
}

// admitPending takes a new socket into the pending budget, or says why not.
func (ad *admission) admitPending(c *Connection, addr net.Addr) error {
	host := hostOf(addr)
	switch {
	case len(ad.pending) >= ad.maxPending:
		ad.refusals.Add(1)
		return fmt.Errorf("%w: %d connections in their TLS handshake (MaxPending)", ErrTooManyPending, ad.maxPending)
	case host != "" && ad.perAddr[host] >= ad.maxPerAddr:
		ad.refusals.Add(1)
		return fmt.Errorf("%w: %d connections from %s in their TLS handshake (MaxPendingPerAddr)",
			ErrTooManyPending, ad.maxPerAddr, host)
	}
	ad.pending[c] = host
	ad.perAddr[host]++
	return nil
}

// admitLive moves a connection whose handshake is done from the pending
// budget to the authenticated ones, or says why not.
func (ad *admission) admitLive(ctx actor.Context, c *Connection) error {
	ad.endPending(ctx, c)
	if ad.live >= ad.maxConns {
		return fmt.Errorf("%w (%d)", ErrTooManyConnections, ad.maxConns)
	}
	ad.live++
	return nil
}

// gone forgets a connection that closed; live says whether it had been
// admitted as authenticated.
func (ad *admission) gone(ctx actor.Context, c *Connection, live bool) {
	ad.endPending(ctx, c)
	if live {
		ad.live--
	}
}

// endPending takes c out of the pending budget and gives back its slot.
func (ad *admission) endPending(ctx actor.Context, c *Connection) {
	if host, ok := ad.pending[c]; ok {
		delete(ad.pending, c)
		if ad.perAddr[host]--; ad.perAddr[host] <= 0 {
			delete(ad.perAddr, host)
		}
	}
	ad.releaseSlot(ctx, c)
}

// askSlot gives a handshake slot now, or queues the request.
func (ad *admission) askSlot(r slotRequest) {
	if _, ok := ad.pending[r.c]; !ok {
		return // the connection is gone already; its handshake has failed
	}
	if len(ad.slots) < ad.maxHandshakes {
		ad.slots[r.c] = true
		close(r.grant)
		return
	}
	ad.waiting = append(ad.waiting, r)
}

// releaseSlot gives back c's slot, or drops its request, and hands the slot
// to the next connection still waiting.
func (ad *admission) releaseSlot(_ actor.Context, c *Connection) {
	if !ad.slots[c] {
		for i, r := range ad.waiting {
			if r.c == c {
				ad.waiting = append(ad.waiting[:i], ad.waiting[i+1:]...)
				break
			}
		}
		return
	}
	delete(ad.slots, c)
	for len(ad.waiting) > 0 && len(ad.slots) < ad.maxHandshakes {
		r := ad.waiting[0]
		ad.waiting = ad.waiting[1:]
		if _, ok := ad.pending[r.c]; ok {
			ad.slots[r.c] = true
			close(r.grant)
		}
	}
}

// hostOf is the address a pending budget is counted for: the IP of a TCP
// peer; none for a Unix socket peer (they are all local, and unnamed).
func hostOf(a net.Addr) string {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.IP.String()
	case *net.UnixAddr, nil:
		return ""
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// handshakeTLS returns the TLS configuration of one accepted connection: the
// server's, with a hook that asks the server actor for a handshake slot once
// the client's hello has arrived.
func handshakeTLS(base *tls.Config, root *actor.RootContext, server *actor.PID, c *Connection) *tls.Config {
	cfg := base.Clone()
	user := base.GetConfigForClient
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		grant := make(chan struct{})
		root.Send(server, slotRequest{c, grant})
		select {
		case <-grant:
		case <-hello.Context().Done():
			return nil, fmt.Errorf("waiting for a handshake slot: %w", hello.Context().Err())
		}
		if user != nil {
			return user(hello)
		}
		return nil, nil
	}
	return cfg
}

// flightConn wraps an accepted socket during its handshake: the first read
// after a write means the server's flight is out and it waits for the
// client, so the handshake slot can go to another connection.
type flightConn struct {
	net.Conn
	wrote, done atomic.Bool
	onFlight    func()
}

// Write marks that the server's flight has begun.
func (f *flightConn) Write(b []byte) (int, error) {
	if !f.done.Load() {
		f.wrote.Store(true)
	}
	return f.Conn.Write(b)
}

// Read gives the slot back on the first read after a write.
func (f *flightConn) Read(b []byte) (int, error) {
	if !f.done.Load() && f.wrote.Load() {
		f.done.Store(true)
		f.onFlight()
	}
	return f.Conn.Read(b)
}
