package actors

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tokenserver/tokenserver/actors/internal/serverlist"
)

// Client is the handle of a token client: the original's TokenClient. It
// connects from construction on; its events reach the callbacks and the
// handler PID of its options. Its methods are safe for concurrent use and
// never block on the network.
type Client struct {
	lifecycle
	// conn is the live connection Send writes to directly, published by the
	// actor once the reconnect buffer has been flushed into it.
	conn atomic.Pointer[Connection]
	// cycling: reconnection runs (the client connects again by itself), so
	// Send may keep tokens in the buffer. Written by the actor.
	cycling atomic.Bool
	// buffered is the bytes of tokens Send took for the buffer and that are
	// not yet sent or dropped; Send adds, the actor subtracts.
	buffered atomic.Int64
	// routed is the tokens Send posted to the actor and the actor has not
	// handled yet: while there are any, Send posts too, to keep the order.
	routed   atomic.Int64
	bufLimit int64 // the reconnect buffer's size; 0: no buffer
	// tlsr is the TLS source's, for ReloadTLS and TLSInfo (reload.go).
	tlsr *tlsReloader
}

// NewClient checks the options, builds the TLS configuration and starts the
// client actor, which starts connecting at once (status CONNECTING). A bad
// option is an error here; a failed connect is an error event.
func NewClient(opts ClientOptions) (*Client, error) {
	limits, err := opts.Limits.withDefaults()
	if err != nil {
		return nil, err
	}
	target := &dialTarget{unix: opts.Path != ""}
	switch {
	case len(opts.Servers) > 0:
		if opts.Path != "" || opts.Host != "" || opts.Port != 0 {
			return nil, fmt.Errorf("%w: Servers with Path, Host or Port: give one or the other", ErrInvalidOptions)
		}
		list, err := serverlist.New(opts.Servers)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidOptions, err)
		}
		target.list = list
	case opts.Path != "" && (opts.Host != "" || opts.Port != 0):
		return nil, fmt.Errorf("%w: Path %q with Host or Port: give one or the other", ErrInvalidOptions, opts.Path)
	case opts.Path != "":
		target.addr = opts.Path
	case opts.Port <= 0 || opts.Port > 65535:
		return nil, fmt.Errorf("%w: port %d out of range", ErrInvalidOptions, opts.Port)
	}
	if !target.unix && target.list == nil {
		host := opts.Host
		if host == "" {
			host = "localhost" // as Node's tls.connect
		}
		target.addr = net.JoinHostPort(host, strconv.Itoa(opts.Port))
	}
	if err := checkHandler(opts.Handler, opts.Runtime.System); err != nil {
		return nil, err
	}
	if opts.LendTokens && opts.Handler != nil {
		return nil, fmt.Errorf("%w: LendTokens with Handler: a handler PID's messages outlive any call, so their tokens cannot be lent", ErrInvalidOptions)
	}
	src, tlsr, err := newClientTLS(opts.TLS, opts.Runtime.Logger)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidOptions, err)
	}
	target.src = src
	if target.protocols, err = protocolsOf(opts.Protocols); err != nil {
		return nil, err
	}
	if r := opts.Reconnect; r != nil {
		if err := r.Policy.Validate(); err != nil {
			return nil, fmt.Errorf("%w: reconnect: %w", ErrInvalidOptions, err)
		}
		if r.BufferSize < 0 {
			return nil, fmt.Errorf("%w: reconnect buffer size %d is negative", ErrInvalidOptions, r.BufferSize)
		}
	}
	c := &Client{tlsr: tlsr}
	c.stats = newStats(roleClient, c.gauges)
	if err := c.stats.startMetrics(opts.Runtime); err != nil {
		return nil, err
	}
	system, log, owned := opts.Runtime.resolve()
	c.init(system, owned)
	if opts.Reconnect != nil {
		c.bufLimit = int64(opts.Reconnect.BufferSize)
		c.cycling.Store(true)
	}
	a := &clientActor{c: c, opts: opts, log: log}
	a.connCfg = connConfig{limits: limits, log: log, handlerCredit: opts.Handler != nil, lend: opts.LendTokens,
		dial:       target,
		supervised: opts.Reconnect != nil,
		ownerPool:  c.pool}
	if offersToken2(target.protocols) {
		a.connCfg.sessions = &sessionConfig{}
		a.session = newSessionState()
	}
	a.connCfg.stats = c.stats
	a.ev = newEmitter(opts.Handler, log, &c.inCallback, opts.callback,
		tokenCallbacks{one: opts.OnToken, remoteClose: true, lent: opts.LendTokens})
	a.ev.stats = c.stats
	a.ev.watchDeadLetters(system, "client")
	c.pid = system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return a }, actor.WithDispatcher(c.pool)))
	return c, nil
}

// Connection returns the live connection, or nil when not connected.
func (c *Client) Connection() *Connection { return c.conn.Load() }

// Buffered is the number of bytes of tokens waiting in the reconnect buffer.
func (c *Client) Buffered() int { return int(c.buffered.Load()) }

// Send sends token to the server. Connected, it returns as Connection.Send.
// Not connected, it returns false, as in the original, unless reconnection is
// on with a buffer: then the token waits in the reconnect buffer and is sent,
// in order, once connected; if the buffer is full Send returns false and the
// token is also reported by OnDropped. After Close it returns false. Send
// copies token.
func (c *Client) Send(token []byte) bool {
	if request(c.asked.Load()) == reqClose {
		return false
	}
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
	if after := c.buffered.Add(n); after > c.bufLimit && after != n {
		c.buffered.Add(-n)
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
	return c.askClose(func(st Status) bool {
		return st == ONLINE || st == CONNECTING || (st == OFFLINE && c.cycling.Load())
	})
}

// Connect connects again after delay. It returns false if the client is
// connected, connecting, reconnecting or closing, or was shut down.
func (c *Client) Connect(delay time.Duration) bool {
	return c.askConnect(connectRequest{delay}, !c.cycling.Load())
}

// Shutdown closes the client if it is open, waits until its close event has
// been delivered and every actor and goroutine it started has stopped, then
// ends the client for good. It returns ctx's error if ctx ends first. Called
// from inside one of the client's callbacks it returns ErrInCallback at once
// (it cannot wait for the callback that called it); the shutdown then
// completes once that callback returns, and Done is closed.
func (c *Client) Shutdown(ctx context.Context) error { return c.shutdown(ctx, c.Close) }

// callback calls the option's callback for one event.
func (o *ClientOptions) callback(ev any, c *Connection, err error) {
	switch ev := ev.(type) {
	case *Connected:
		if o.OnConnect != nil {
			o.OnConnect()
		}
	case *Reconnecting:
		if o.OnReconnecting != nil {
			o.OnReconnecting(ev.Attempt, ev.Delay, ev.Cause)
		}
	case *ReconnectGaveUp:
		if o.OnGaveUp != nil {
			o.OnGaveUp(ev.Attempts, ev.Cause)
		}
	default:
		peerCallbacks{o.OnRemoteClose, o.OnError, o.OnClose, o.OnDrain, o.OnDropped}.call(ev, c, err)
	}
}
