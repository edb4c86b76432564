package actors

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tokenserver/tokenserver/supervisor"
	"github.com/tokenserver/tokenserver/tlsio"
	"github.com/tokenserver/tokenserver/wire"
)

// Client is the handle of a token client: the original's TokenClient. It
// connects from construction on; its events reach the callbacks and the
// handler PID of its options. Its methods are safe for concurrent use and
// never block on the network.
type Client struct {
	lifecycle
	conn atomic.Pointer[Connection]

	// Reconnection and its buffer.
	reconnect bool
	bufLimit  int64
	bufBytes  atomic.Int64 // bytes taken by Send and not yet sent or dropped
	routed    atomic.Int64 // tokens on their way through the client actor
	cycling   atomic.Bool  // reconnection is active: Send may buffer
}

// NewClient checks the options, builds the TLS configuration and starts the
// client actor, which starts connecting at once (status CONNECTING). A bad
// option is an error here; a failed connect is an error event.
func NewClient(opts ClientOptions) (*Client, error) {
	limits, err := opts.Limits.withDefaults()
	if err != nil {
		return nil, err
	}
	if opts.Port <= 0 || opts.Port > 65535 {
		return nil, fmt.Errorf("%w: port %d out of range", ErrInvalidOptions, opts.Port)
	}
	host := opts.Host
	if host == "" {
		host = "localhost" // as Node's tls.connect
	}
	cfg, err := tlsio.ClientConfig(opts.TLS)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidOptions, err)
	}
	if r := opts.Reconnect; r != nil {
		if err := r.Policy.Validate(); err != nil {
			return nil, fmt.Errorf("%w: reconnect: %w", ErrInvalidOptions, err)
		}
		if r.BufferSize < 0 {
			return nil, fmt.Errorf("%w: reconnect buffer size %d is negative", ErrInvalidOptions, r.BufferSize)
		}
	}
	system, log, owned := opts.Runtime.resolve()
	c := &Client{}
	c.init(system, owned)
	if opts.Reconnect != nil {
		c.reconnect = true
		c.bufLimit = int64(opts.Reconnect.BufferSize)
		c.cycling.Store(true)
	}
	a := &clientActor{
		c: c, opts: opts, limits: limits, tls: cfg,
		addr: net.JoinHostPort(host, strconv.Itoa(opts.Port)),
		ev:   events{handler: opts.Handler, log: log},
		deliver: delivery{onToken: opts.OnToken, onRemoteClose: opts.OnRemoteClose, remoteClose: true,
			onError: withoutConn(opts.OnError)},
	}
	c.pid = system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return a }))
	return c, nil
}

// Connection returns the live connection, or nil when not connected.
func (c *Client) Connection() *Connection { return c.conn.Load() }

// Buffered is the number of bytes of tokens waiting in the reconnect buffer.
func (c *Client) Buffered() int { return int(c.bufBytes.Load()) }

// Send sends token to the server. Connected, it returns as Connection.Send.
// Not connected, it returns false, as in the original, unless reconnection is
// on with a buffer: then the token waits in the reconnect buffer and is sent,
// in order, once connected; if the buffer is full Send returns false and the
// token is also reported by OnDropped. Send copies token.
func (c *Client) Send(token []byte) bool {
	if conn := c.conn.Load(); conn != nil && c.routed.Load() == 0 {
		if conn.Send(token) {
			return true
		}
	}
	if c.bufLimit == 0 || !c.cycling.Load() {
		return false
	}
	n := int64(len(token))
	tok := append([]byte(nil), token...)
	if after := c.bufBytes.Add(n); after > c.bufLimit && after != n {
		c.bufBytes.Add(-n)
		c.system.Root.Send(c.pid, tokensDropped{[][]byte{tok}, ErrBufferFull})
		return false
	}
	c.routed.Add(1)
	c.system.Root.Send(c.pid, bufferedToken(tok))
	return true
}

// Close closes the connection cleanly, or stops a connect in progress or a
// reconnection waiting for its delay, and then emits close. Tokens still in
// the reconnect buffer are reported by OnDropped. It returns true the first
// time, false when the client is already closed or offline.
func (c *Client) Close() bool {
	for {
		st := c.status.load()
		if st <= CLOSED && !(st == OFFLINE && c.cycling.Load()) {
			return false
		}
		if c.status.cas(st, CLOSED) {
			c.cycling.Store(false)
			// As in the original, Send returns false from now on.
			if conn := c.conn.Swap(nil); conn != nil {
				conn.Close()
			}
			c.system.Root.Send(c.pid, closeRequest{})
			return true
		}
	}
}

// Connect connects again after delay. It returns false if the client is
// connected, connecting, reconnecting or closing, or was shut down.
func (c *Client) Connect(delay time.Duration) bool {
	if c.gone.Load() || c.cycling.Load() || !c.status.cas(OFFLINE, CONNECTING) {
		return false
	}
	if c.reconnect {
		c.cycling.Store(true)
	}
	c.system.Root.Send(c.pid, connectRequest{delay})
	return true
}

// Shutdown closes the client if it is open, waits until its close event has
// been delivered and every actor and goroutine it started has stopped, then
// ends the client for good. It returns ctx's error if ctx ends first.
func (c *Client) Shutdown(ctx context.Context) error { return c.shutdown(ctx, c.Close) }

// Messages of the client actor.
type (
	dialResult struct {
		conn *tls.Conn
		err  error
	}
	// bufferedToken: a token Send routed through the client actor.
	bufferedToken []byte
	// runnerDone: the supervisor of links has stopped, and every message
	// its links sent has been handled.
	runnerDone struct{ pid *actor.PID }
	// tokensDropped: tokens to report as dropped.
	tokensDropped struct {
		tokens [][]byte
		reason error
	}
)

// clientActor owns the client's link: one link actor, or with reconnection
// a supervisor actor that restarts links with backoff. It keeps the reconnect
// buffer and delivers the events.
type clientActor struct {
	c       *Client
	opts    ClientOptions
	limits  Limits
	tls     *tls.Config
	addr    string
	ev      events
	deliver delivery

	gen       int
	timer     *time.Timer
	runner    *actor.PID  // the link, or the supervisor of links
	linkUp    bool        // a link is running
	live      *Connection // the connection, until connDown
	published bool        // live is visible to Send
	buffer    [][]byte
	hadError  bool
	closing   bool   // Close was asked; the supervisor must not restart links
	lastCause string // why the last link ended

	shutdown   bool
	stoppedYet bool
}

// Receive handles one message.
func (a *clientActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.startRunner(ctx)
	case connectRequest:
		a.hadError = false
		a.gen++
		if m.delay <= 0 {
			a.startRunner(ctx)
		} else {
			root, self, msg := ctx.ActorSystem().Root, ctx.Self(), listenNow{a.gen}
			a.timer = time.AfterFunc(m.delay, func() { root.Send(self, msg) })
		}
	case listenNow:
		if m.gen == a.gen && a.timer != nil {
			a.timer = nil
			a.startRunner(ctx)
		}
	case linkStarted:
		a.linkUp = true
	case *supervisor.Started:
		if a.closingNow() { // Close raced with this restart
			ctx.Send(a.runner, &supervisor.StopChild{})
		}
	case *supervisor.Restarting:
		if a.closingNow() {
			ctx.Send(a.runner, &supervisor.StopChild{})
			return
		}
		if a.c.status.cas(OFFLINE, CONNECTING) {
			a.hadError = false
		}
		a.ev.call("OnReconnecting", func() {
			if a.opts.OnReconnecting != nil {
				a.opts.OnReconnecting(m.Attempt, m.Delay, a.lastCause)
			}
		})
		a.ev.tell(ctx, &Reconnecting{Attempt: m.Attempt, Delay: m.Delay, Cause: a.lastCause})
	case *supervisor.GaveUp:
		a.c.cycling.Store(false)
		a.c.status.cas(CONNECTING, OFFLINE)
		a.dropBuffer(ctx, fmt.Errorf("%w after %d attempts: %s", ErrGaveUp, m.Attempts, m.Cause))
		a.ev.call("OnGaveUp", func() {
			if a.opts.OnGaveUp != nil {
				a.opts.OnGaveUp(m.Attempts, m.Cause)
			}
		})
		a.ev.tell(ctx, &ReconnectGaveUp{Attempts: m.Attempts, Cause: m.Cause})
	case *supervisor.Stopped:
		a.lastCause = m.Cause
	case linkDialFailed:
		if a.closingNow() { // an attempt Close is cancelling: no news to the user
			a.ev.log.Debug("connect attempt failed while closing", "err", m.err)
			return
		}
		a.hadError = true
		a.emitError(ctx, m.err)
	case connUp:
		a.onUp(ctx, m.c)
	case connFrames:
		a.ev.deliver(ctx, m, &a.deliver)
	case connFailed:
		a.hadError = true
		a.emitError(ctx, m.err)
	case connDown:
		a.live, a.published = nil, false
		a.c.conn.Store(nil)
	case linkEnded:
		a.linkUp = false
		a.live, a.published = nil, false
		a.c.conn.Store(nil)
		if a.opts.Reconnect != nil && a.closingNow() {
			// After Close (even one whose request is still on its way), one
			// close event comes, once the supervisor is gone.
			return
		}
		if st := a.c.status.load(); st == CONNECTING || st == ONLINE || st == CLOSED {
			a.c.status.store(OFFLINE)
		}
		if !a.c.reconnect || !a.c.cycling.Load() {
			a.c.cycling.Store(false)
			a.dropBuffer(ctx, ErrClientClosed)
		}
		a.emitClose(ctx)
	case *actor.Terminated:
		// Only the supervisor's end matters; a lone link's end is linkEnded.
		// Terminated overtakes ordinary messages: queue a marker behind
		// those the links sent before they ended, and finish on it.
		if a.opts.Reconnect != nil && a.runner != nil && m.Who.Equal(a.runner) {
			ctx.Send(ctx.Self(), runnerDone{m.Who})
		}
	case runnerDone:
		if a.runner != nil && m.pid.Equal(a.runner) {
			a.runner, a.linkUp = nil, false
			a.runnerGone(ctx)
		}
	case connUnsent:
		a.onUnsent(ctx, m.frames)
	case bufferedToken:
		a.onBuffered(ctx, m)
	case tokensDropped:
		a.emitDropped(ctx, m.tokens, m.reason)
	case closeRequest:
		a.onClose(ctx)
	case shutdownRequest:
		a.shutdown = true
		a.maybeStop(ctx)
	case *actor.Stopped:
		a.c.stopped()
	}
}

func (a *clientActor) startRunner(ctx actor.Context) {
	if a.c.status.load() != CONNECTING || a.runner != nil {
		return
	}
	if a.opts.Reconnect == nil {
		a.runner = ctx.Spawn(linkProps(ctx.Self(), a.addr, a.tls, a.limits, a.ev.log, false))
		a.linkUp = true // before its linkStarted: Close must find it
		return
	}
	props, err := supervisor.NewProps(
		linkProps(ctx.Self(), a.addr, a.tls, a.limits, a.ev.log, true),
		supervisor.Config{Policy: a.opts.Reconnect.Policy, Listener: ctx.Self()})
	if err != nil { // validated in NewClient
		panic(err)
	}
	a.c.cycling.Store(true)
	a.runner = ctx.Spawn(props)
}

// onUp publishes a new connection once the reconnect buffer is flushed into
// it, so that tokens keep their order.
func (a *clientActor) onUp(ctx actor.Context, c *Connection) {
	if a.c.status.load() == CLOSED {
		c.Close() // Close came first
		return
	}
	a.live = c
	a.c.status.store(ONLINE)
	a.flushBuffer()
	a.ev.call("OnConnect", func() {
		if a.opts.OnConnect != nil {
			a.opts.OnConnect()
		}
	})
	a.ev.tell(ctx, connectedEvent(c))
}

func (a *clientActor) flushBuffer() {
	for len(a.buffer) > 0 {
		tok := a.buffer[0]
		if !a.live.Send(tok) {
			return // the connection died already: keep the rest for the next one
		}
		a.c.bufBytes.Add(-int64(len(tok)))
		a.buffer[0] = nil
		a.buffer = a.buffer[1:]
	}
	a.buffer = nil
	a.published = true
	a.c.conn.Store(a.live)
}

func (a *clientActor) onBuffered(ctx actor.Context, tok []byte) {
	defer a.c.routed.Add(-1)
	switch {
	case a.published && a.live.Send(tok):
		a.c.bufBytes.Add(-int64(len(tok)))
	case !a.c.cycling.Load():
		a.c.bufBytes.Add(-int64(len(tok)))
		a.emitDropped(ctx, [][]byte{tok}, ErrClientClosed)
	default:
		a.buffer = append(a.buffer, tok)
	}
}

// onUnsent takes back tokens a closing connection never wrote: ahead of the
// reconnect buffer, which holds newer ones, or reported as dropped.
func (a *clientActor) onUnsent(ctx actor.Context, frames []byte) {
	dec, err := wire.NewDecoder(len(frames) + 1)
	if err != nil {
		return
	}
	decoded, _ := dec.AppendFrames(nil, frames)
	tokens := make([][]byte, 0, len(decoded))
	for _, f := range decoded {
		if f.Kind == wire.KindToken {
			tokens = append(tokens, f.Token)
		}
	}
	if len(tokens) == 0 {
		return
	}
	if a.c.bufLimit == 0 || !a.c.cycling.Load() {
		a.emitDropped(ctx, tokens, ErrNotSent)
		return
	}
	for _, t := range tokens {
		a.c.bufBytes.Add(int64(len(t)))
	}
	a.buffer = append(tokens, a.buffer...)
}

func (a *clientActor) dropBuffer(ctx actor.Context, reason error) {
	if len(a.buffer) == 0 {
		return
	}
	tokens := a.buffer
	a.buffer = nil
	for _, t := range tokens {
		a.c.bufBytes.Add(-int64(len(t)))
	}
	a.emitDropped(ctx, tokens, reason)
}

func (a *clientActor) onClose(ctx actor.Context) {
	if a.c.status.load() != CLOSED {
		// A stale request: the close it asked for has already been emitted
		// (the connection ended by itself meanwhile), and the client may even
		// be connecting again.
		return
	}
	a.dropBuffer(ctx, ErrClientClosed)
	if a.runner != nil && a.opts.Reconnect != nil {
		a.closing = true // the close event comes when the supervisor is gone
	}
	if a.timer != nil { // waiting to connect again
		a.timer.Stop()
		a.timer = nil
		a.gen++
		a.c.status.store(OFFLINE)
		a.emitClose(ctx)
		return
	}
	switch {
	case a.linkUp:
		ctx.Send(a.runner, closeRequest{}) // its linkEnded emits close
	case a.runner != nil: // a supervisor waiting for its delay
		ctx.Send(a.runner, &supervisor.StopChild{})
	default: // nothing runs
		a.c.status.store(OFFLINE)
		a.emitClose(ctx)
	}
}

// closingNow reports whether Close was called: processed already, or with
// its request still on its way (the status says CLOSED first).
func (a *clientActor) closingNow() bool {
	return a.closing || a.c.status.load() == CLOSED
}

// runnerGone finishes after the supervisor of links has stopped: the close
// event owed to Close, then maybe the end of the actor.
func (a *clientActor) runnerGone(ctx actor.Context) {
	if a.closing {
		a.closing = false
		a.c.status.store(OFFLINE)
		a.emitClose(ctx)
		return
	}
	a.maybeStop(ctx)
}

func (a *clientActor) emitError(ctx actor.Context, err error) {
	a.ev.call("OnError", func() {
		if a.opts.OnError != nil {
			a.opts.OnError(err)
		}
	})
	a.ev.tell(ctx, errorEvent(nil, err))
}

func (a *clientActor) emitClose(ctx actor.Context) {
	had := a.hadError
	a.hadError = false
	a.ev.call("OnClose", func() {
		if a.opts.OnClose != nil {
			a.opts.OnClose(had)
		}
	})
	a.ev.tell(ctx, closedEvent(nil, had))
	if a.opts.Reconnect == nil {
		a.runner = nil
	}
	a.maybeStop(ctx)
}

func (a *clientActor) emitDropped(ctx actor.Context, tokens [][]byte, reason error) {
	a.ev.call("OnDropped", func() {
		if a.opts.OnDropped != nil {
			a.opts.OnDropped(tokens, reason)
		}
	})
	a.ev.tell(ctx, &TokensDropped{Tokens: tokens, Code: ErrorCode(reason), Message: reason.Error()})
}

// maybeStop ends the actor after Shutdown once nothing is left running.
func (a *clientActor) maybeStop(ctx actor.Context) {
	if !a.shutdown || a.stoppedYet || a.runner != nil || a.linkUp || a.c.routed.Load() > 0 {
		return
	}
	if st := a.c.status.load(); st != OFFLINE {
		return
	}
	a.stoppedYet = true
	if a.timer != nil {
		a.timer.Stop()
	}
	ctx.Stop(ctx.Self())
}
