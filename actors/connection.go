package actors

import (
	"crypto/tls"
	"net"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tokenserver/tokenserver/wire"
)

// Connection is the handle of one connection: the original's Connection
// (token event, send, close, remoteClose, isDead). It is safe for concurrent
// use, and none of its methods blocks on the network: they post messages to
// the connection actor that owns the socket.
type Connection struct {
	id     uint64
	pid    *actor.PID // set by the spawner before the handle is shared
	root   *actor.RootContext
	shared *connShared
	remote net.Addr
	local  net.Addr
	tls    atomic.Pointer[tls.ConnectionState]
}

// connShared is the little state the handle and the connection actor both
// see: whether the connection still takes tokens, and how many bytes wait in
// its outbound queue.
type connShared struct {
	dead   atomic.Bool
	queued atomic.Int64
	hwm    int64
}

var connIDs atomic.Uint64

func newConnection(root *actor.RootContext, conn net.Conn, hwm int) *Connection {
	c := &Connection{
		id:     connIDs.Add(1),
		root:   root,
		shared: &connShared{hwm: int64(hwm)},
	}
	if conn != nil {
		c.remote, c.local = conn.RemoteAddr(), conn.LocalAddr()
	}
	return c
}

// ID is a number unique to this connection within the process.
func (c *Connection) ID() uint64 { return c.id }

// PID is the connection actor's PID. Send it SendToken or CloseConnection
// from any actor, local or remote.
func (c *Connection) PID() *actor.PID { return c.pid }

// RemoteAddr is the peer's address.
func (c *Connection) RemoteAddr() net.Addr { return c.remote }

// LocalAddr is our end's address.
func (c *Connection) LocalAddr() net.Addr { return c.local }

// TLSState returns the TLS connection state once the handshake is done (the
// peer's certificates among it), and false for a connection that is not TLS
// or has not finished its handshake.
func (c *Connection) TLSState() (tls.ConnectionState, bool) {
	if s := c.tls.Load(); s != nil {
		return *s, true
	}
	return tls.ConnectionState{}, false
}

// IsDead reports whether the connection no longer takes tokens: it was
// closed, by either side, or failed.
func (c *Connection) IsDead() bool { return c.shared.dead.Load() }

// Queued is the number of bytes waiting in the outbound queue.
func (c *Connection) Queued() int { return int(c.shared.queued.Load()) }

// Send queues token for sending and reports whether it was taken: false if
// the connection is dead, or if the outbound queue would pass its high-water
// mark, in which case the connection fails with ErrQueueFull (the peer does
// not keep up). A single token is always taken by an empty queue, whatever its
// size. Send copies token: the caller may reuse it at once.
func (c *Connection) Send(token []byte) bool {
	if c.shared.dead.Load() {
		return false
	}
	frame := wire.AppendToken(frameBuf(len(token)+len(token)/8+1), token)
	if !c.reserve(len(frame)) {
		return false
	}
	c.root.Send(c.pid, outFrame(frame))
	return true
}

// SendBatch queues tokens for sending, in order, as one message to the
// connection actor: the cheap way to send many small tokens at once. It takes
// all of them or none, on the same terms as Send.
func (c *Connection) SendBatch(tokens [][]byte) bool {
	if c.shared.dead.Load() {
		return false
	}
	if len(tokens) == 0 {
		return true
	}
	n := 0
	for _, t := range tokens {
		n += len(t) + 1
	}
	buf := frameBuf(n + n/8) // room for some escapes; grows if need be
	for _, t := range tokens {
		buf = wire.AppendToken(buf, t)
	}
	if !c.reserve(len(buf)) {
		return false
	}
	c.root.Send(c.pid, outFrame(buf))
	return true
}

// RemoteClose sends the remoteClose control frame, asking the peer to close
// its side. It returns false if the connection is dead.
func (c *Connection) RemoteClose() bool {
	if !c.reserve(2) {
		return false
	}
	c.root.Send(c.pid, outFrame(wire.AppendRemoteClose(nil)))
	return true
}

// Close closes the connection cleanly: what was sent before is written, then
// our side is shut and the socket closed once the peer closes too (or after
// the close timeout). It returns true if the connection was alive, false if
// it was already dead.
func (c *Connection) Close() bool {
	if !c.shared.dead.CompareAndSwap(false, true) {
		return false
	}
	c.root.Send(c.pid, closeRequest{})
	return true
}

// msgOverhead is what one queued message costs beyond its frame bytes (the
// mailbox node, the boxed slice): counted in the queue while the message
// waits, so that a flood of tiny tokens is bounded by memory, not bytes.
const msgOverhead = 64

// reserve claims n bytes, and one message, of the outbound queue.
func (c *Connection) reserve(n int) bool {
	s := c.shared
	if s.dead.Load() {
		return false
	}
	n += msgOverhead
	after := s.queued.Add(int64(n))
	if after > s.hwm && after != int64(n) {
		s.queued.Add(-int64(n))
		c.root.Send(c.pid, queueFull{})
		return false
	}
	return true
}
