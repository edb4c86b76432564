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
	"github.com/tokenserver/tokenserver/tlsio"
)

// Client is the handle of a token client: the original's TokenClient. It
// connects from construction on; its events reach the callbacks and the
// handler PID of its options. Its methods are safe for concurrent use and
// never block on the network.
type Client struct {
	pid    *actor.PID
	system *actor.ActorSystem
	owned  bool
	status statusCell
	conn   atomic.Pointer[Connection]
	done   chan struct{}
	gone   atomic.Bool
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
	system, log, owned := opts.Runtime.resolve()
	c := &Client{system: system, owned: owned, done: make(chan struct{})}
	c.status.store(CONNECTING)
	a := &clientActor{
		c: c, opts: opts, limits: limits, tls: cfg,
		addr: net.JoinHostPort(host, strconv.Itoa(opts.Port)),
		ev:   events{handler: opts.Handler, log: log},
	}
	c.pid = system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return a }))
	return c, nil
}

// PID is the client actor's PID.
func (c *Client) PID() *actor.PID { return c.pid }

// Status returns OFFLINE, CLOSED, CONNECTING or ONLINE.
func (c *Client) Status() Status { return c.status.load() }

// Connection returns the live connection, or nil when not connected.
func (c *Client) Connection() *Connection { return c.conn.Load() }

// Send sends token to the server. It returns false when not connected, and
// otherwise as Connection.Send.
func (c *Client) Send(token []byte) bool {
	if conn := c.conn.Load(); conn != nil {
		return conn.Send(token)
	}
	return false
}

// Close closes the connection cleanly, or stops a connect in progress, and
// then emits close. It returns true the first time, false when the client is
// already closed or offline.
func (c *Client) Close() bool {
	for {
		st := c.status.load()
		if st <= CLOSED {
			return false
		}
		if c.status.cas(st, CLOSED) {
			c.system.Root.Send(c.pid, closeRequest{})
			return true
		}
	}
}

// Connect connects again after delay. It returns false if the client is
// connected, connecting or closing, or was shut down.
func (c *Client) Connect(delay time.Duration) bool {
	if c.gone.Load() || !c.status.cas(OFFLINE, CONNECTING) {
		return false
	}
	c.system.Root.Send(c.pid, connectRequest{delay})
	return true
}

// Shutdown closes the client if it is open, waits until its close event has
// been delivered and every actor and goroutine it started has stopped, then
// ends the client for good. It returns ctx's error if ctx ends first.
func (c *Client) Shutdown(ctx context.Context) error {
	c.Close()
	if c.gone.CompareAndSwap(false, true) {
		c.system.Root.Send(c.pid, shutdownRequest{})
	}
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Done is closed once Shutdown has finished.
func (c *Client) Done() <-chan struct{} { return c.done }

type dialResult struct {
	conn *tls.Conn
	err  error
}

// clientActor owns the dialing goroutine and at most one connection.
type clientActor struct {
	c      *Client
	opts   ClientOptions
	limits Limits
	tls    *tls.Config
	addr   string
	ev     events

	gen        int
	timer      *time.Timer
	cancelDial context.CancelFunc // set while dialing
	live       *Connection        // spawned connection, until connDown
	hadError   bool
	shutdown   bool
	stoppedYet bool
}

// Receive handles one message.
func (a *clientActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.dial(ctx)
	case connectRequest:
		a.hadError = false
		a.gen++
		if m.delay <= 0 {
			a.dial(ctx)
		} else {
			root, self, msg := ctx.ActorSystem().Root, ctx.Self(), listenNow{a.gen}
			a.timer = time.AfterFunc(m.delay, func() { root.Send(self, msg) })
		}
	case listenNow:
		if m.gen == a.gen {
			a.timer = nil
			a.dial(ctx)
		}
	case dialResult:
		a.onDialed(ctx, m)
	case connUp:
		if !a.c.status.cas(CONNECTING, ONLINE) {
			return // Close came first and is closing this connection
		}
		a.c.conn.Store(m.c)
		a.ev.call("OnConnect", func() {
			if a.opts.OnConnect != nil {
				a.opts.OnConnect()
			}
		})
		a.ev.tell(ctx, connectedEvent(m.c))
	case connFrames:
		a.ev.deliver(ctx, m, a.opts.OnToken, func(c *Connection) {
			if a.opts.OnRemoteClose != nil {
				a.opts.OnRemoteClose(c)
			}
		})
	case connFailed:
		a.hadError = true
		a.emitError(ctx, m.err)
	case connDown:
		a.live = nil
		a.c.conn.Store(nil)
		a.c.status.store(OFFLINE)
		a.emitClose(ctx)
	case closeRequest:
		a.onClose(ctx)
	case shutdownRequest:
		a.shutdown = true
		a.maybeStop(ctx)
	case *actor.Stopped:
		if a.c.owned {
			a.c.system.Shutdown()
		}
		close(a.c.done)
	}
}

func (a *clientActor) dial(ctx actor.Context) {
	if a.c.status.load() != CONNECTING || a.cancelDial != nil {
		return
	}
	dctx, cancel := context.WithCancel(context.Background())
	a.cancelDial = cancel
	root, self := ctx.ActorSystem().Root, ctx.Self()
	addr, cfg := a.addr, a.tls
	dc := tlsio.DialConfig{HandshakeTimeout: a.limits.HandshakeTimeout, KeepAlive: a.limits.KeepAlive}
	go func() {
		conn, err := tlsio.Dial(dctx, addr, cfg, dc)
		root.Send(self, dialResult{conn, err})
	}()
}

func (a *clientActor) onDialed(ctx actor.Context, m dialResult) {
	a.cancelDial()
	a.cancelDial = nil
	switch {
	case a.c.status.load() == CLOSED: // Close was called while dialing
		if m.conn != nil {
			_ = m.conn.Close()
		}
		a.c.status.store(OFFLINE)
		a.emitClose(ctx)
	case m.err != nil:
		a.hadError = true
		a.emitError(ctx, fmt.Errorf("%w: %w", ErrDial, m.err))
		a.c.status.store(OFFLINE)
		a.emitClose(ctx)
	default:
		h := newConnection(ctx.ActorSystem().Root, m.conn, a.limits.HighWaterMark)
		a.live = h
		h.pid = ctx.Spawn(connProps(h, m.conn, false, a.limits, ctx.Self(), a.ev.log))
	}
}

func (a *clientActor) onClose(ctx actor.Context) {
	if a.timer != nil { // waiting to connect again
		a.timer.Stop()
		a.timer = nil
		a.gen++
		a.c.status.store(OFFLINE)
		a.emitClose(ctx)
		return
	}
	if a.cancelDial != nil {
		a.cancelDial() // the dial result emits close
		return
	}
	if a.live != nil {
		a.live.Close() // connDown emits close; false means it is closing already
		return
	}
	// Close came before the first dial started.
	a.c.status.store(OFFLINE)
	a.emitClose(ctx)
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
	a.ev.call("OnClose", func() {
		if a.opts.OnClose != nil {
			a.opts.OnClose(had)
		}
	})
	a.ev.tell(ctx, closedEvent(nil, had))
	a.maybeStop(ctx)
}

// maybeStop ends the actor after Shutdown once nothing is left running.
func (a *clientActor) maybeStop(ctx actor.Context) {
	if !a.shutdown || a.stoppedYet || a.cancelDial != nil || a.live != nil {
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
