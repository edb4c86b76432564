package actors

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Server is the handle of a token server: the original's TokenServer. It
// listens from construction on; its events reach the callbacks and the handler
// PID of its options. Its methods are safe for concurrent use and never block
// on the network.
type Server struct {
	lifecycle
	addr  atomic.Pointer[net.Addr]
	conns atomic.Pointer[[]*Connection]
	tlsr  *tlsReloader // ReloadTLS, TLSInfo (reload.go)
}

// NewServer checks the options, builds the TLS configuration and starts the
// server actor, which starts listening at once (status CONNECTING). A bad
// option is an error here; a port in use is an error event.
func NewServer(opts ServerOptions) (*Server, error) {
	limits, err := opts.Limits.withDefaults()
	if err != nil {
		return nil, err
	}
	if opts.Path != "" && (opts.Host != "" || opts.Port != 0) {
		return nil, fmt.Errorf("%w: Path %q with Host or Port: give one or the other", ErrInvalidOptions, opts.Path)
	}
	if opts.Port < 0 || opts.Port > 65535 {
		return nil, fmt.Errorf("%w: port %d out of range", ErrInvalidOptions, opts.Port)
	}
	if opts.MaxConnections == 0 {
		opts.MaxConnections = DefaultMaxConnections
	}
	if opts.MaxPending == 0 {
		opts.MaxPending = DefaultMaxPending
	}
	if opts.MaxPendingPerAddr == 0 {
		opts.MaxPendingPerAddr = min(DefaultMaxPendingPerAddr, opts.MaxPending)
	}
	if opts.MaxHandshakes == 0 {
		opts.MaxHandshakes = max(1, runtime.GOMAXPROCS(0)/2)
	}
	if opts.MaxConnections < 0 || opts.MaxPending < 0 || opts.MaxPendingPerAddr < 0 || opts.MaxHandshakes < 0 {
		return nil, fmt.Errorf("%w: MaxConnections %d, MaxPending %d, MaxPendingPerAddr %d and MaxHandshakes %d must not be negative",
			ErrInvalidOptions, opts.MaxConnections, opts.MaxPending, opts.MaxPendingPerAddr, opts.MaxHandshakes)
	}
	if opts.ListenRetry != nil {
		if err := opts.ListenRetry.Validate(); err != nil {
			return nil, fmt.Errorf("%w: listen retry: %w", ErrInvalidOptions, err)
		}
	}
	if err := checkHandler(opts.Handler, opts.Runtime.System); err != nil {
		return nil, err
	}
	if opts.LendTokens && opts.Handler != nil {
		return nil, fmt.Errorf("%w: LendTokens with Handler: a handler PID's messages outlive any call, so their tokens cannot be lent", ErrInvalidOptions)
	}
	if opts.Protocols, err = protocolsOf(opts.Protocols); err != nil {
		return nil, err
	}
	if opts.MemoryBudget == 0 {
		opts.MemoryBudget = DefaultMemoryBudget
	}
	if opts.MemoryWait == 0 {
		opts.MemoryWait = DefaultMemoryWait
	}
	if need := (limits.MaxTokenSize + budgetStep - 1) / budgetStep * budgetStep; opts.MemoryBudget > 0 && opts.MemoryBudget < need {
		return nil, fmt.Errorf("%w: MemoryBudget %d cannot hold one token of Limits.MaxTokenSize %d (%d in its steps)",
			ErrInvalidOptions, opts.MemoryBudget, limits.MaxTokenSize, need)
	}
	if opts.MemoryWait < 0 {
		return nil, fmt.Errorf("%w: MemoryWait %v is negative", ErrInvalidOptions, opts.MemoryWait)
	}
	if opts.SessionTimeout == 0 {
		opts.SessionTimeout = DefaultSessionTimeout
	}
	if opts.SessionTimeout < 0 {
		return nil, fmt.Errorf("%w: SessionTimeout %v is negative", ErrInvalidOptions, opts.SessionTimeout)
	}
	cfg, tlsr, err := newServerTLS(opts.TLS, opts.Protocols, opts.Runtime.Logger)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidOptions, err)
	}
	s := &Server{tlsr: tlsr}
	s.stats = newStats(roleServer, s.gauges)
	if err := s.stats.startMetrics(opts.Runtime); err != nil {
		return nil, err
	}
	system, log, owned := opts.Runtime.resolve()
	s.init(system, owned)
	s.conns.Store(&[]*Connection{})
	a := &serverActor{
		s: s, opts: opts, limits: limits, tls: cfg, log: log,
		addr:  listenAddr(opts),
		conns: map[*Connection]bool{}, admit: newServerAdmission(opts),
		sessions: newSessions(),
	}
	if opts.MemoryBudget > 0 {
		a.budget = newServerBudget(opts.MemoryBudget, s.stats)
	}
	warnDescriptors(log, opts)
	a.ev = newEmitter(opts.Handler, log, &s.inCallback, opts.callback,
		tokenCallbacks{one: opts.OnToken, batch: opts.OnTokens, redelivered: opts.OnRedelivered, lent: opts.LendTokens})
	a.ev.stats = s.stats
	a.ev.watchDeadLetters(system, "server")
	s.pid = system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return a }, actor.WithDispatcher(s.pool)))
	return s, nil
}

// Addr is the address the server listens on (a *net.TCPAddr with the port
// picked when Port was 0, or a *net.UnixAddr with Path), or nil while it does
// not listen.
func (s *Server) Addr() net.Addr {
	if a := s.addr.Load(); a != nil {
		return *a
	}
	return nil
}

// Connections returns the live connections. A closed connection leaves the
// list before its close event is delivered.
func (s *Server) Connections() []*Connection {
	return append([]*Connection(nil), *s.conns.Load()...)
}

// Close stops accepting, sends remoteClose to every client, waits for them
// to close, closes by force those still open after the close timeout, then
// emits close. It returns true if the server was listening or about to, false
// if it was already closed or closing.
func (s *Server) Close() bool {
	return s.askClose(func(st Status) bool { return st == ONLINE || st == CONNECTING })
}

// Connect listens again after delay, on the port it had before (also when
// Port was 0 and the system picked it). It returns false if the server is
// listening, connecting or closing, or was shut down.
func (s *Server) Connect(delay time.Duration) bool {
	return s.askConnect(connectRequest{delay}, true)
}

// Shutdown closes the server if it is open, waits until its close event has
// been delivered and every actor and goroutine it started has stopped, then
// ends the server for good. It returns ctx's error if ctx ends first. Called
// from inside one of the server's callbacks it returns ErrInCallback at once
// (it cannot wait for the callback that called it); the shutdown then
// completes once that callback returns, and Done is closed.
func (s *Server) Shutdown(ctx context.Context) error { return s.shutdown(ctx, s.Close) }

// callback calls the option's callback for one event.
func (o *ServerOptions) callback(ev any, c *Connection, err error) {
	switch ev := ev.(type) {
	case *Listening:
		if o.OnConnect != nil {
			o.OnConnect()
		}
	case *Connected:
		if o.OnConnection != nil {
			o.OnConnection(c)
		}
	case *ErrorOccurred:
		switch {
		case c == nil && o.OnError != nil:
			o.OnError(err)
		case c != nil && o.OnConnectionError != nil:
			o.OnConnectionError(c, err)
		}
	case *Closed:
		switch {
		case c == nil && o.OnClose != nil:
			o.OnClose(ev.HadError)
		case c != nil && o.OnConnectionClose != nil:
			o.OnConnectionClose(c, ev.HadError)
		}
	case *Drained:
		if o.OnDrain != nil {
			o.OnDrain(c)
		}
	case *TokensDropped:
		if o.OnDropped != nil {
			o.OnDropped(c, ev.Tokens, err)
		}
	case *Reconnecting:
		if o.OnListenRetry != nil {
			o.OnListenRetry(ev.Attempt, ev.Delay, ev.Cause)
		}
	case *ReconnectGaveUp:
		if o.OnGaveUp != nil {
			o.OnGaveUp(ev.Attempts, ev.Cause)
		}
	}
}

// listenAddr is what the listener listens on: host:port, or the socket path.
func listenAddr(o ServerOptions) string {
	if o.Path != "" {
		return o.Path
	}
	return net.JoinHostPort(o.Host, strconv.Itoa(o.Port))
}
