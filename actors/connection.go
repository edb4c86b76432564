package actors

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tokenserver/tokenserver/actors/internal/dispatch"
	"github.com/tokenserver/tokenserver/actors/internal/framepool"
	"github.com/tokenserver/tokenserver/wire"
)

// Connection is the handle of one connection: the original's Connection
// (token event, send, close, remoteClose, isDead). It is safe for concurrent
// use, and none of its methods blocks on the network: they post messages to
// the connection actor that owns the socket.
type Connection struct {
	id     uint64
	root   *actor.RootContext
	shared *connShared
	// pid is the connection actor's, set before the handle is shared. A
	// token/2 session keeps its actor, and so its PID, across its sockets.
	pid *actor.PID
	// remote and local are the addresses of the socket: set before the
	// handle is shared, and again by a token/2 session's actor when it
	// resumes on a new socket.
	remote atomic.Pointer[net.Addr]
	local  atomic.Pointer[net.Addr]
	tls    atomic.Pointer[tls.ConnectionState]
	// protocol is the connection's wire protocol: set by the actor once the
	// handshake is done (or at once when there is none), read by Send.
	protocol atomic.Pointer[wire.Codec]
	// session is a token/2 connection's session id in hex: written by the
	// actor before connUp, read by the owner after it and by Session.
	session atomic.Pointer[string]
	// peerReceived: what a server's token/2 client had received of its
	// session when it opened it here; written by the actor before connUp.
	peerReceived atomic.Uint64
	obs          connObs // what the owner's stats remember of it
}

// connShared is the state the handle and the connection actor both see.
type connShared struct {
	// gate is closed when the connection stops taking tokens.
	gate gate
	// queued is the outbound queue: bytes Send took (plus msgOverhead per
	// message on its way) that are not yet written or handed back. Send adds,
	// the actor subtracts.
	queued atomic.Int64
	// paused: the actor stopped reading because queued passed the high-water
	// mark; it reads again under the low-water mark.
	paused atomic.Bool
	// crossed: a Send left queued over the high-water mark. The actor may
	// never see it over (a write can finish before the actor takes that
	// frame), yet the producer saw Queued() over it and waits for a drain
	// event: the actor pauses on crossed too, so that one follows.
	crossed atomic.Bool
	// room, when set, is closed by the actor when the queue drains under the
	// low-water mark or the connection dies (see WaitDrain).
	room atomic.Pointer[chan struct{}]
	// sends is the frames Send took and the actor has not yet, newest
	// first: handles push inside the gate, the actor takes them all.
	sends atomic.Pointer[sendBatch]
	hwm   int64
	max   int64 // the hard cap
}

var connIDs atomic.Uint64

func newConnection(root *actor.RootContext, limits Limits) *Connection {
	return &Connection{
		id:     connIDs.Add(1),
		root:   root,
		shared: &connShared{hwm: int64(limits.HighWaterMark), max: int64(limits.MaxQueue)},
	}
}

// ID is a number unique to this connection within the process.
func (c *Connection) ID() uint64 { return c.id }

// PID is the connection actor's PID. Send it SendToken, Credit or
// CloseConnection from any actor, local or remote.
func (c *Connection) PID() *actor.PID { return c.pid }

// RemoteAddr is the peer's address (of its latest socket, for a token/2
// session that resumed on another).
func (c *Connection) RemoteAddr() net.Addr { return loadAddr(&c.remote) }

// LocalAddr is our end's address (of the latest socket).
func (c *Connection) LocalAddr() net.Addr { return loadAddr(&c.local) }

// setAddrs records the addresses of the connection's socket.
func (c *Connection) setAddrs(conn net.Conn) {
	r, l := conn.RemoteAddr(), conn.LocalAddr()
	c.remote.Store(&r)
	c.local.Store(&l)
}

func loadAddr(p *atomic.Pointer[net.Addr]) net.Addr {
	if a := p.Load(); a != nil {
		return *a
	}
	return nil
}

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
func (c *Connection) IsDead() bool { return c.shared.gate.isClosed() }

// Queued is the number of bytes waiting in the outbound queue.
func (c *Connection) Queued() int { return int(max(c.shared.queued.Load(), 0)) }

// ReadPaused reports whether the connection has stopped reading because its
// outbound queue passed Limits.HighWaterMark: the peer sends faster than it
// reads what it is sent. It reads again under Limits.LowWaterMark.
func (c *Connection) ReadPaused() bool { return c.shared.paused.Load() }

// Send queues token for sending and reports whether it was taken: false if
// the connection is dead, or if the queue would pass Limits.MaxQueue, in
// which case the connection fails as a slow consumer. Past
// Limits.HighWaterMark Send still takes tokens (the connection stops reading
// meanwhile); a producer that is not driven by reads waits with WaitDrain or
// the drain event. A token Send took is written, or reported dropped. A
// single token is always taken by an empty queue, whatever its size. Send
// copies token: the caller may reuse it at once. On token/1 a token of 256
// KiB or more is copied as it is and escaped by the connection's actor, a
// piece at a time, each piece written while the next is escaped: Send
// returns sooner, and the escaped frame never exists whole.
func (c *Connection) Send(token []byte) bool {
	if c.shared.gate.isClosed() {
		return false
	}
	codec := c.codec()
	if codec == nil {
		return c.postEarly([]wire.Frame{{Kind: wire.KindToken, Token: token}})
	}
	if sendsInPieces(codec, len(token)) {
		// Escaped by the actor a piece at a time (conn_pieces.go).
		return c.post(&sendBatch{raw: append(framepool.Get(len(token)), token...), rawPooled: true, tokens: 1})
	}
	return c.post(&sendBatch{frames: codec.AppendToken(framepool.Get(codec.FrameSizeHint(len(token))), token), tokens: 1})
}

// SendBatch queues tokens for sending, in order, as one message to the
// connection actor: the cheap way to send many small tokens at once. It takes
// all of them or none, on the same terms as Send.
func (c *Connection) SendBatch(tokens [][]byte) bool {
	if c.shared.gate.isClosed() {
		return false
	}
	if len(tokens) == 0 {
		return true
	}
	codec := c.codec()
	if codec == nil {
		frames := make([]wire.Frame, len(tokens))
		for i, t := range tokens {
			frames[i] = wire.Frame{Kind: wire.KindToken, Token: t}
		}
		return c.postEarly(frames)
	}
	n := 0
	for _, t := range tokens {
		n += codec.FrameSizeHint(len(t))
	}
	buf := framepool.Get(n) // grows if need be
	for _, t := range tokens {
		buf = codec.AppendToken(buf, t)
	}
	return c.post(&sendBatch{frames: buf, tokens: len(tokens)})
}

// RemoteClose sends the remoteClose control frame, asking the peer to close
// its side. It returns false if the connection is dead.
func (c *Connection) RemoteClose() bool {
	rc := wire.Frame{Kind: wire.KindRemoteClose}
	codec := c.codec()
	if codec == nil {
		return c.postEarly([]wire.Frame{rc})
	}
	frame, err := codec.AppendControl(nil, rc)
	if err != nil { // every protocol has remoteClose
		return false
	}
	return c.post(&sendBatch{frames: frame})
}

// codec is the connection's protocol, nil until its handshake is done.
func (c *Connection) codec() wire.Codec {
	if p := c.protocol.Load(); p != nil {
		return *p
	}
	return nil
}

// postEarly hands over frames sent before the connection's protocol is
// known (a connection still in its TLS handshake): copies of their tokens,
// which the actor encodes once the protocol is known.
func (c *Connection) postEarly(frames []wire.Frame) bool {
	return c.post(newEarlyBatch(frames, true))
}

// newEarlyBatch is a batch of frames to encode once the protocol is known;
// with copyTokens, its tokens are copied first.
func newEarlyBatch(frames []wire.Frame, copyTokens bool) *sendBatch {
	e := &earlyFrames{frames: frames}
	b := &sendBatch{early: e}
	for i := range frames {
		if frames[i].Kind == wire.KindToken {
			if copyTokens {
				frames[i].Token = append([]byte{}, frames[i].Token...)
			}
			b.tokens++
			e.size += len(frames[i].Token)
		}
	}
	return b
}

// msgOverhead is what one batch of frames costs while it waits for the
// actor, beyond its frame bytes (its node, the slice header): counted in
// the queue, so that a flood of tiny tokens is bounded by memory, not bytes.
const msgOverhead = 64

// post claims room in the queue for batch and hands it to the actor: it
// pushes it on the shared sends stack from inside the gate, so that the
// actor, which waits for the gate to empty before it ends, finds it there.
// The doorbell message that wakes the actor goes after the gate is left,
// and only from the push that found the stack empty: a later push finds
// that doorbell still on its way. Over the hard cap post asks the actor to
// fail instead.
func (c *Connection) post(batch *sendBatch) bool {
	s := c.shared
	if !s.gate.enter() {
		batch.release()
		return false
	}
	taken := s.claim(int64(batch.size() + msgOverhead))
	first := false
	if taken {
		first = s.push(batch)
	}
	s.gate.leave()
	switch {
	case !taken:
		batch.release()
		c.root.Send(c.PID(), overCap{})
	case first:
		c.root.Send(c.PID(), sendsWaiting{})
	}
	return taken
}

// sendBatch is the frames of one Send, SendBatch or RemoteClose, waiting on
// the sends stack for the actor: encoded, or (early) not yet, or a large
// token that the actor encodes in pieces (raw). It is kept small: one is
// allocated per Send.
type sendBatch struct {
	frames []byte
	tokens int          // how many of the frames are tokens (a remoteClose is not)
	early  *earlyFrames // frames to encode once the protocol is known, or nil
	// raw is a token to encode in pieces, or nil; rawPooled: a frame pool
	// buffer (Send's copy).
	raw       []byte
	rawPooled bool
	next      *sendBatch
}

// earlyFrames are frames sent before the protocol was known.
type earlyFrames struct {
	frames []wire.Frame
	size   int // the bytes of their tokens, counted in the queue meanwhile
}

// size is what the batch counts for in the queue.
func (b *sendBatch) size() int {
	switch {
	case b.raw != nil:
		return rawSize(b.raw)
	case b.early != nil:
		return b.early.size
	}
	return len(b.frames)
}

// release gives the batch's buffers back to the frame pool: it was not
// taken.
func (b *sendBatch) release() {
	framepool.Put(b.frames)
	if b.rawPooled {
		framepool.Put(b.raw)
	}
}

// push puts b on the sends stack and reports whether the stack was empty.
func (s *connShared) push(b *sendBatch) bool {
	for {
		top := s.sends.Load()
		b.next = top
		if s.sends.CompareAndSwap(top, b) {
			return top == nil
		}
	}
}

// takeSends is the actor's: it empties the sends stack and returns its
// batches oldest first.
func (s *connShared) takeSends() *sendBatch {
	var oldest *sendBatch
	for b := s.sends.Swap(nil); b != nil; {
		next := b.next
		b.next = oldest
		oldest, b = b, next
	}
	return oldest
}

// claim is reserve for a handle's Send, which also notes a crossing of the
// high-water mark (see crossed).
func (s *connShared) claim(n int64) bool {
	if !s.reserve(n) {
		return false
	}
	if s.queued.Load() > s.hwm {
		s.crossed.Store(true)
	}
	return true
}

// reserve adds n bytes to the queue unless that passes the hard cap (an
// empty queue takes anything) and reports whether it did.
func (s *connShared) reserve(n int64) bool {
	if after := s.queued.Add(n); after > s.max && after != n {
		s.queued.Add(-n)
		return false
	}
	return true
}

// Close closes the connection cleanly: what was sent before is written, then
// our side is shut and the socket closed once the peer closes too (or after
// the close timeout; at once when the connection cannot half-close, as
// net.Pipe). It returns true if the connection was alive, false if it was
// already dead.
func (c *Connection) Close() bool {
	if !c.shared.gate.close() {
		return false
	}
	c.root.Send(c.PID(), closeRequest{})
	return true
}

// WaitDrain returns nil at once if the outbound queue is under
// Limits.HighWaterMark; otherwise it waits until the queue is back under
// Limits.LowWaterMark. It returns ErrClosed if the connection dies first and
// ctx's error if ctx ends first. It is how a goroutine that produces tokens
// waits for room without polling:
//
//	for _, tok := range tokens {
//		if err := c.WaitDrain(ctx); err != nil {
//			return err
//		}
//		c.Send(tok)
//	}
func (c *Connection) WaitDrain(ctx context.Context) error {
	s := c.shared
	for {
		if s.gate.isClosed() {
			return ErrClosed
		}
		if s.queued.Load() <= s.hwm {
			return nil
		}
		ch := s.room.Load()
		if ch == nil {
			fresh := make(chan struct{})
			if !s.room.CompareAndSwap(nil, &fresh) {
				continue
			}
			ch = &fresh
			// The actor may have drained between the check above and now:
			// it closes only what it finds, so look again.
			if s.queued.Load() <= s.hwm || s.gate.isClosed() {
				continue
			}
		}
		select {
		case <-*ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// wakeWaiters closes the room channel, if any: the actor's, when the queue
// drains or the connection dies.
func (s *connShared) wakeWaiters() {
	if ch := s.room.Swap(nil); ch != nil {
		close(*ch)
	}
}

// ConnectionOptions configures NewConnection.
type ConnectionOptions struct {
	// Limits of the connection.
	Limits Limits
	Runtime
	// Handler, if set, receives every event as a message. It must return
	// Credit for the tokens it processes (see CreditMiddleware). It must be
	// an actor of Runtime.System or on a node that system reaches through
	// Proto.Actor remote; any other PID is an ErrInvalidOptions error from
	// NewConnection, and dead letters at it are logged once (see
	// ServerOptions.Handler).
	Handler *actor.PID
	// Handshake runs the TLS handshake first (with Limits.HandshakeTimeout)
	// when the conn is a *tls.Conn that has not done it yet.
	Handshake bool

	// OnToken: a token from the peer.
	OnToken func(token []byte, c *Connection)
	// OnRemoteClose: the peer sent the remoteClose control frame.
	OnRemoteClose func(c *Connection)
	// OnError: the connection failed. Always followed by OnClose(true),
	// except for ErrHandlerPanic (a callback panicked; the connection goes on).
	OnError func(err error)
	// OnClose: the connection closed.
	OnClose func(hadError bool)
	// OnDrain: the outbound queue is back under Limits.LowWaterMark after
	// passing Limits.HighWaterMark.
	OnDrain func()
	// OnDropped: tokens sent that will never be written, with the reason
	// (ErrNotSent or ErrMaybeSent).
	OnDropped func(tokens [][]byte, reason error)
}

// NewConnection wraps any net.Conn (TLS, TCP, net.Pipe) in a connection
// actor and returns its handle: the original's Connection, which wraps any
// stream. The handle owns conn from now on.
func NewConnection(conn net.Conn, opts ConnectionOptions) (*Connection, error) {
	limits, err := opts.Limits.withDefaults()
	if err != nil {
		return nil, err
	}
	if conn == nil {
		return nil, fmt.Errorf("%w: nil conn", ErrInvalidOptions)
	}
	if err := checkHandler(opts.Handler, opts.Runtime.System); err != nil {
		return nil, err
	}
	system, log, owned := opts.Runtime.resolve()
	root := system.Root
	h := newConnection(root, limits)
	h.setAddrs(conn)
	pool := dispatch.NewWorkerPool()
	owner := root.Spawn(actor.PropsFromProducer(func() actor.Actor {
		return newStandalone(opts, log, system, owned, pool)
	}, actor.WithDispatcher(pool)))
	// The PID is set before the actor can hand the handle to anyone.
	name := "tokenserver-conn-" + strconv.FormatUint(h.id, 10)
	h.pid = actor.NewPID(system.Address(), name)
	cfg := connConfig{limits: limits, owner: owner, log: log, handshake: opts.Handshake,
		handlerCredit: opts.Handler != nil, ownerPool: pool}
	if _, err := root.SpawnNamed(connProps(h, conn, cfg), name); err != nil {
		root.Stop(owner)
		return nil, fmt.Errorf("tokenserver: spawn connection actor: %w", err)
	}
	return h, nil
}
