package actors

import (
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/tokenserver/tokenserver/supervisor"
	"github.com/tokenserver/tokenserver/tlsio"
)

// Defaults of the server's admission limits.
const (
	// DefaultMaxConnections is the server's limit of authenticated
	// connections.
	DefaultMaxConnections = 10000
	// DefaultMaxPending is how many accepted sockets the server holds
	// before their handshake is done (in it, or waiting their turn), from
	// all addresses: as many as Linux's default listen backlog
	// (net.core.somaxconn), so that a burst of 2,000 from one address is
	// queued, not refused.
	DefaultMaxPending = 4096
	// DefaultMaxPendingPerAddr is how many of those one address (one IPv6
	// /64) may have in their handshake at once; the others wait their turn.
	// It covers a fast server's handshake rate times a long round trip
	// (1,000 a second times 250 ms), so a crowd behind one NAT is not slowed
	// by it, and bounds what one address's silent sockets hold (13 to 18 KiB
	// and two goroutines each in their handshake, about 1.5 KiB and none
	// while they wait).
	DefaultMaxPendingPerAddr = 256
	// DefaultHandshakeTimeout is the server's and the client's default
	// Limits.HandshakeTimeout. A server's runs from accept, so it bounds the
	// wait for a turn too: 30 s lets a burst of 2,000 be served one slot at
	// a time with RSA 4096 keys (about 6 ms of signing each: 12 s), or on 2
	// loaded cores under the race detector. A silent socket that holds its
	// place this long costs nobody a place: when MaxPending are held, the
	// oldest silent one makes room (nginx waits 60 s, Node 120 s).
	DefaultHandshakeTimeout = 30 * time.Second
)

// Runtime says where the actors run, where logs go and where metrics go.
type Runtime struct {
	// System is an actor system to embed in. Nil: a private one, made quiet
	// (Proto.Actor's default logger writes to stderr). A Handler PID must be
	// of this system (or on a node it reaches through Proto.Actor remote).
	System *actor.ActorSystem
	// Logger receives the runtime's own logs. Nil: logs are dropped.
	Logger *slog.Logger
	// MeterProvider, if set, receives the metrics of the server or client:
	// OpenTelemetry instruments of the meter MeterName, read from its counts
	// when the provider collects (the README's "Operating it" lists them).
	// Nil, the default: no metrics, and nothing is done for them. Stats gives
	// the same counts either way. Standalone connections (NewConnection)
	// report none. Proto.Actor's own metrics are not turned on by this: see
	// actor.WithMetricProviders for a System of your own.
	MeterProvider metric.MeterProvider
	// MetricAttributes are added to every metric of the server or client.
	// The metrics of servers (or clients) that share a MeterProvider add up;
	// these tell them apart, for example attribute.String("listener",
	// "public").
	MetricAttributes []attribute.KeyValue
}

// ServerOptions configures NewServer: the options of the original
// TokenServer (host, port, key, cert, ca, requestCert and any TLS option),
// its events, and the limits.
//
// Callbacks run inside the server actor, one at a time and in order for each
// connection; a callback that panics is reported as an ErrHandlerPanic error
// event and the connection goes on. They must not block for long: while one
// runs, no other event of this server is delivered.
type ServerOptions struct {
	// Host to listen on (default: all interfaces, as in Node).
	Host string
	// Port to listen on; 0 picks a free port (see Server.Addr).
	Port int
	// Path, if set, listens on this Unix domain socket instead of Host and
	// Port (TLS over it; Node's path option). A stale socket file is removed
	// only when nothing listens on it; the server removes its own on close.
	Path string
	// TLS holds key, cert, ca, requestCert, rejectUnauthorized and the
	// escape hatch for any other TLS option.
	TLS tlsio.Options
	// Protocols are the wire protocols the server speaks, negotiated by
	// ALPN, in order of preference: by default ProtocolToken2 then
	// ProtocolToken1. A client that offers none (the Node original, any
	// client without ALPN) speaks token/1 whatever this says; []string{
	// ProtocolToken1} keeps every connection on token/1. It replaces
	// TLS.TLSConfig.NextProtos.
	Protocols []string
	// SessionTimeout is how long a token/2 session whose connection broke
	// waits for its client to come back and resume it (default
	// DefaultSessionTimeout, 60 s). Meanwhile its Connection stays alive:
	// Send queues, within Limits.MaxQueue. When it passes, the session ends
	// with ErrSessionExpired (error then close events), and what its client
	// did not acknowledge is reported dropped with that reason.
	SessionTimeout time.Duration
	// Limits per connection.
	Limits Limits
	// MemoryBudget bounds the memory of the tokens the server's connections
	// have begun to read and not finished, beyond 64 KiB each (default
	// DefaultMemoryBudget, 256 MiB; it must hold Limits.MaxTokenSize;
	// negative: no budget, each connection up to its MaxTokenSize). A
	// connection whose unfinished token needs more asks for it and stops
	// reading until it has it (TCP pushes back on its client), in the order
	// asked; one that waits MemoryWait is cut with ErrMemoryBudget. Small
	// tokens never wait.
	MemoryBudget int
	// MemoryWait is how long a connection may wait for the MemoryBudget
	// (default DefaultMemoryWait, 30 s).
	MemoryWait time.Duration
	// MaxConnections is the limit of authenticated connections: one whose
	// handshake completes past it is closed with an error event
	// (ErrTooManyConnections; default DefaultMaxConnections).
	MaxConnections int
	// MaxPending is how many accepted sockets the server holds before their
	// TLS handshake is done, in it or waiting their turn (default
	// DefaultMaxPending); they are not counted in MaxConnections. When they
	// are all held, a new socket takes the place of the oldest silent one
	// (no complete client hello yet) of the address holding the most silent
	// ones; only if there is none is the new socket refused. An evicted or
	// refused socket gives no event: it is counted in
	// Stats.RefusedMaxPending, the log (Runtime.Logger) says how many once
	// per burst, and a socket not read yet is answered with a TLS alert,
	// which a Client reports as tlsio.ErrHandshakeRefused.
	MaxPending int
	// MaxPendingPerAddr is how many of those sockets one remote address (or
	// one IPv6 /64) may have in their handshake at once (default
	// DefaultMaxPendingPerAddr). The others wait their turn, in order and
	// unread, their handshake timeout running from accept: a crowd from one
	// address is queued, not refused, and holds little while it waits.
	// Peers of a Unix socket have no such limit.
	MaxPendingPerAddr int
	// MaxHandshakes is how many handshakes may be in their CPU-heavy part at
	// once (default half of GOMAXPROCS, at least 1): a flood of handshakes
	// then slows new handshakes, not the established connections, which
	// keep the other cores. A handshake takes its slot once the client's
	// hello has arrived and gives it back once the server's flight is
	// written; the slots go to addresses in turn, so one address's crowd
	// does not make another's client wait for all of it. On 2 cores, with 200 handshakes of an RSA key
	// from another process, 1 kept the established connection's round-trip
	// p99 within a few times its quiet value; 2 let it grow 25 to 100 times.
	MaxHandshakes int
	Runtime
	// Handler, if set, receives every event as a message (Listening,
	// Connected, TokenReceived, Closed...), in addition to the callbacks. It
	// must return Credit for the tokens it processes (see CreditMiddleware),
	// or its connections stop reading.
	//
	// Events are sent from Runtime.System, so the handler must be an actor of
	// that system, spawned before NewServer, or an actor on another node that
	// the system reaches through Proto.Actor remote. Any other PID (one of
	// another actor system, which would receive nothing; a stopped actor; one
	// of another node while the system runs no remote; any PID with
	// Runtime.System nil) is an ErrInvalidOptions error from NewServer: set
	// Runtime.System to the handler's actor system. (A PID of another system
	// whose Id also names an actor of Runtime.System cannot be told apart:
	// Proto.Actor's PIDs do not name their system.) Events that end as dead
	// letters at the handler later (it stopped, its node is out of reach) are
	// logged once, at error level, to Runtime.Logger.
	Handler *actor.PID

	// OnConnect: the server listens.
	OnConnect func()
	// OnConnection: a client connected and finished its TLS handshake.
	OnConnection func(c *Connection)
	// OnError: a server error (listening or accepting failed). Always
	// followed by OnClose(true).
	OnError func(err error)
	// OnClose: the server stopped listening and every connection closed.
	OnClose func(hadError bool)
	// OnToken: a token from a client. The token belongs to the callee.
	OnToken func(token []byte, c *Connection)
	// OnRedelivered, if set, gets instead of OnToken (or OnTokens) the
	// tokens flagged as redelivered: a token/2 client sends again what a
	// server lost with its sessions (it restarted) did not acknowledge, and
	// that server may have handled them already. Without it they go to
	// OnToken like any other; TokenReceived.Redelivered tells a handler PID.
	OnRedelivered func(token []byte, c *Connection)
	// OnTokens, if set, replaces OnToken: it gets all the tokens of one read
	// at once, in order, which with Connection.SendBatch makes one message
	// per read both ways. The slice and the tokens belong to the callee
	// (with LendTokens, for the duration of the call only).
	OnTokens func(tokens [][]byte, c *Connection)
	// LendTokens lends each token to the token callbacks (OnToken, OnTokens, OnRedelivered) for the duration of
	// the call only, as bufio.Scanner.Bytes does, instead of giving it: the
	// read buffer the tokens lie in is read into again once the callback
	// has returned, so that a connection that reads a steady stream of
	// tokens allocates no buffer per read. A callback that keeps a token
	// after it returns must copy it (Connection.Send and SendBatch copy what
	// they send). A token that spans reads is in a buffer of its own, lent
	// the same way. Not with Handler, whose messages outlive any call: the
	// two together are an ErrInvalidOptions error.
	LendTokens bool
	// OnConnectionError: the error event of one connection (a failed
	// handshake, bad input, a slow consumer...). Always followed by
	// OnConnectionClose(c, true), except for ErrHandlerPanic: a callback that
	// panicked is reported here with its value, its token is skipped, and the
	// connection goes on (the handler failed, not the connection).
	OnConnectionError func(c *Connection, err error)
	// OnConnectionClose: one connection closed.
	OnConnectionClose func(c *Connection, hadError bool)
	// OnDrain: the outbound queue of c went past Limits.HighWaterMark and is
	// back under Limits.LowWaterMark: a producer may send again. One follows
	// every Send that left c.Queued() over the high-water mark, unless c
	// closes first (see Drained).
	OnDrain func(c *Connection)
	// OnDropped: tokens sent on c that will never be written, with the
	// reason: ErrNotSent (the connection closed or failed first) or
	// ErrMaybeSent (they were in the write that failed). Nothing a Send took
	// disappears without this event.
	OnDropped func(c *Connection, tokens [][]byte, reason error)

	// ListenRetry, if set, makes a server whose listen fails (a port in use)
	// listen again after the policy's delays, until Close or until the policy
	// gives up. Each failure still gives error then close; each retry is an
	// OnListenRetry event (and a Reconnecting message).
	ListenRetry *supervisor.Policy
	// OnListenRetry: listening failed; the next try comes after delay.
	OnListenRetry func(attempt int, delay time.Duration, cause string)
	// OnGaveUp: the ListenRetry policy gave up.
	OnGaveUp func(attempts int, cause string)
}

// ClientOptions configures NewClient: the options of the original
// TokenClient, its events, and the limits. Callbacks run as the server's do
// (see ServerOptions).
type ClientOptions struct {
	// Host and Port of the server.
	Host string
	Port int
	// Path, if set, connects to this Unix domain socket instead of Host and
	// Port. The server certificate is then checked against
	// TLS.ServerName, or "localhost" as in Node.
	Path string
	// Servers, if set, is a server list ("host:port" each) instead of Host
	// and Port, as nats.go's server pool: every connect attempt takes the
	// next server of the list in a random order, shuffled again once every
	// server was tried, so a client whose server died reconnects (with
	// Reconnect) to another one. The reconnect buffer and OnDropped hold
	// across the switch as across any reconnection.
	Servers []string
	// TLS holds key, cert (the client certificate), ca, rejectUnauthorized,
	// the server name and the escape hatch for any other TLS option.
	TLS tlsio.Options
	// Protocols are the wire protocols the client offers by ALPN, in order
	// of preference: by default ProtocolToken2 then ProtocolToken1. A
	// server that selects none (the Node original) gets token/1;
	// []string{ProtocolToken1} keeps the client on token/1. It replaces
	// TLS.TLSConfig.NextProtos.
	Protocols []string
	// Limits of the connection.
	Limits Limits
	Runtime
	// Handler, if set, receives every event as a message. It must return
	// Credit for the tokens it processes (see CreditMiddleware). It must be
	// an actor of Runtime.System or on a node that system reaches through
	// Proto.Actor remote; any other PID is an ErrInvalidOptions error from
	// NewClient, and dead letters at it are logged once (see
	// ServerOptions.Handler).
	Handler *actor.PID

	// OnConnect: connected, TLS handshake done.
	OnConnect func()
	// OnToken: a token from the server. The token belongs to the callee
	// (with LendTokens, for the duration of the call only).
	OnToken func(token []byte, c *Connection)
	// LendTokens lends each token to OnToken for the duration of
	// the call only, as bufio.Scanner.Bytes does, instead of giving it: the
	// read buffer the tokens lie in is read into again once the callback
	// has returned, so that a connection that reads a steady stream of
	// tokens allocates no buffer per read. A callback that keeps a token
	// after it returns must copy it (Connection.Send and SendBatch copy what
	// they send). A token that spans reads is in a buffer of its own, lent
	// the same way. Not with Handler, whose messages outlive any call: the
	// two together are an ErrInvalidOptions error.
	LendTokens bool
	// OnRemoteClose: the server is closing and asks us to close.
	OnRemoteClose func(c *Connection)
	// OnError: dialing or the connection failed. Always followed by
	// OnClose(true), except for ErrHandlerPanic (a callback panicked; the
	// connection goes on, see ServerOptions.OnConnectionError).
	OnError func(err error)
	// OnClose: the connection closed or the connect attempt ended.
	OnClose func(hadError bool)
	// OnDrain: the connection's outbound queue went past
	// Limits.HighWaterMark and is back under Limits.LowWaterMark.
	OnDrain func()

	// Reconnect turns on supervised reconnection (off by default, as in the
	// original): see ReconnectOptions.
	Reconnect *ReconnectOptions
	// OnReconnecting: a connect attempt failed or the connection was lost
	// (or the server sent remoteClose); the next attempt comes after delay.
	OnReconnecting func(attempt int, delay time.Duration, cause string)
	// OnGaveUp: the reconnection policy gave up.
	OnGaveUp func(attempts int, cause string)
	// OnDropped: tokens the client took and will never send, with the
	// reason: ErrBufferFull, ErrGaveUp, ErrClientClosed, ErrNotSent (the
	// connection closed first and there is no reconnect buffer) or
	// ErrMaybeSent (they were in the write that failed). Nothing is dropped
	// silently.
	OnDropped func(tokens [][]byte, reason error)
}

// DefaultReconnectBuffer is the default size of the reconnect buffer.
const DefaultReconnectBuffer = 8 << 20

// ReconnectOptions configures the client's supervised reconnection. While it
// is on, the client connects again after a failed connect, a lost connection
// or remoteClose, with the delays of Policy, until Close or until the policy
// gives up. Every attempt is an event (OnReconnecting, Reconnecting).
type ReconnectOptions struct {
	// Policy: delays, retry limit, reset after a stable period.
	Policy supervisor.Policy
	// BufferSize is how many bytes of tokens Send keeps while not connected,
	// to be sent in order once connected. 0 turns the buffer off: Send
	// returns false while not connected, as in the original.
	BufferSize int
}

// DefaultReconnect returns reconnection with supervisor.DefaultPolicy and a
// buffer of DefaultReconnectBuffer bytes.
func DefaultReconnect() *ReconnectOptions {
	return &ReconnectOptions{Policy: supervisor.DefaultPolicy(), BufferSize: DefaultReconnectBuffer}
}
