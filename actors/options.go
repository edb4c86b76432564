package actors

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tokenserver/tokenserver/supervisor"
	"github.com/tokenserver/tokenserver/tlsio"
	"github.com/tokenserver/tokenserver/wire"
)

// Defaults of Limits and of the server options.
const (
	// DefaultHighWaterMark is the outbound queue size, in bytes, past which
	// Send returns false and the connection is closed as a slow consumer.
	DefaultHighWaterMark = 8 << 20
	// DefaultCloseTimeout is how long Server.Close waits for clients to close
	// after remoteClose before it closes them by force, and how long a
	// connection closing cleanly waits for the peer's side to close.
	DefaultCloseTimeout = 5 * time.Second
	// DefaultMaxConnections is the server's connection limit.
	DefaultMaxConnections = 10000
)

// Limits bound what one connection may cost. Zero values take the defaults.
type Limits struct {
	// MaxTokenSize is the largest decoded token accepted from the peer
	// (default wire.DefaultMaxTokenSize, 16 MiB). A larger one is an error.
	MaxTokenSize int
	// HighWaterMark is the outbound queue size in bytes past which Send
	// returns false and the connection fails with ErrQueueFull (default 8 MiB).
	HighWaterMark int
	// WriteTimeout is how long the peer may read nothing while data waits
	// for it before the connection fails as a slow consumer (default 10 s;
	// negative disables it).
	WriteTimeout time.Duration
	// HandshakeTimeout bounds the TLS handshake (default 10 s).
	HandshakeTimeout time.Duration
	// KeepAlive is the TCP keepalive period (default 15 s; negative
	// disables it).
	KeepAlive time.Duration
	// ReadBufferSize is the largest single read (default 64 KiB).
	ReadBufferSize int
	// ReadWindow is how many read chunks may wait for the handler before the
	// connection stops reading and TCP pushes back on the peer (default 4).
	ReadWindow int
	// CloseTimeout: see DefaultCloseTimeout.
	CloseTimeout time.Duration
}

func (l Limits) withDefaults() (Limits, error) {
	if l.MaxTokenSize == 0 {
		l.MaxTokenSize = wire.DefaultMaxTokenSize
	}
	if l.HighWaterMark == 0 {
		l.HighWaterMark = DefaultHighWaterMark
	}
	if l.WriteTimeout == 0 {
		l.WriteTimeout = tlsio.DefaultWriteTimeout
	}
	if l.HandshakeTimeout == 0 {
		l.HandshakeTimeout = tlsio.DefaultHandshakeTimeout
	}
	if l.ReadBufferSize == 0 {
		l.ReadBufferSize = tlsio.DefaultReadBufferSize
	}
	if l.ReadWindow == 0 {
		l.ReadWindow = tlsio.DefaultReadWindow
	}
	if l.CloseTimeout == 0 {
		l.CloseTimeout = DefaultCloseTimeout
	}
	switch {
	case l.MaxTokenSize < 0:
		return l, fmt.Errorf("%w: MaxTokenSize %d is negative", ErrInvalidOptions, l.MaxTokenSize)
	case l.HighWaterMark < 0:
		return l, fmt.Errorf("%w: HighWaterMark %d is negative", ErrInvalidOptions, l.HighWaterMark)
	case l.HandshakeTimeout < 0:
		return l, fmt.Errorf("%w: HandshakeTimeout %v is negative", ErrInvalidOptions, l.HandshakeTimeout)
	case l.ReadBufferSize < 0 || l.ReadWindow < 0:
		return l, fmt.Errorf("%w: ReadBufferSize and ReadWindow must not be negative", ErrInvalidOptions)
	case l.CloseTimeout < 0:
		return l, fmt.Errorf("%w: CloseTimeout %v is negative", ErrInvalidOptions, l.CloseTimeout)
	}
	return l, nil
}

// Runtime says where the actors run and where logs go.
type Runtime struct {
	// System is an actor system to embed in. Nil: a private one, made quiet
	// (Proto.Actor's default logger writes to stderr).
	System *actor.ActorSystem
	// Logger receives the runtime's own logs. Nil: logs are dropped.
	Logger *slog.Logger
}

// ServerOptions configures NewServer: the options of the original
// TokenServer (host, port, key, cert, ca, requestCert and any TLS option),
// its events, and the limits.
type ServerOptions struct {
	// Host to listen on (default: all interfaces, as in Node).
	Host string
	// Port to listen on; 0 picks a free port (see Server.Addr).
	Port int
	// TLS holds key, cert, ca, requestCert, rejectUnauthorized and the
	// escape hatch for any other TLS option.
	TLS tlsio.Options
	// Limits per connection.
	Limits Limits
	// MaxConnections: past it new connections are accepted and closed at
	// once with an error event (default DefaultMaxConnections).
	MaxConnections int
	Runtime
	// Handler, if set, receives every event as a message (see events.go), in
	// addition to the callbacks.
	Handler *actor.PID

	// OnConnect: the server listens.
	OnConnect func()
	// OnConnection: a client connected and finished its TLS handshake.
	OnConnection func(c *Connection)
	// OnError: a server error (listening failed). Always followed by
	// OnClose(true).
	OnError func(err error)
	// OnClose: the server stopped listening and every connection closed.
	OnClose func(hadError bool)
	// OnToken: a token from a client. The token belongs to the callee.
	OnToken func(token []byte, c *Connection)
	// OnTokens, if set, replaces OnToken: it gets all the tokens of one read
	// at once, in order, which with Connection.SendBatch makes one message
	// per read both ways. The slice and the tokens belong to the callee.
	OnTokens func(tokens [][]byte, c *Connection)
	// OnConnectionError: the error event of one connection (a failed
	// handshake, bad input, a slow consumer...). Always followed by
	// OnConnectionClose(c, true), except for ErrHandlerPanic: a callback that
	// panicked is reported here with its value, its token is skipped, and the
	// connection goes on (the handler failed, not the connection).
	OnConnectionError func(c *Connection, err error)
	// OnConnectionClose: one connection closed.
	OnConnectionClose func(c *Connection, hadError bool)

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
// TokenClient, its events, and the limits.
type ClientOptions struct {
	// Host and Port of the server.
	Host string
	Port int
	// TLS holds key, cert (the client certificate), ca, rejectUnauthorized,
	// the server name and the escape hatch for any other TLS option.
	TLS tlsio.Options
	// Limits of the connection.
	Limits Limits
	Runtime
	// Handler, if set, receives every event as a message.
	Handler *actor.PID

	// OnConnect: connected, TLS handshake done.
	OnConnect func()
	// OnToken: a token from the server.
	OnToken func(token []byte, c *Connection)
	// OnRemoteClose: the server is closing and asks us to close.
	OnRemoteClose func(c *Connection)
	// OnError: dialing or the connection failed. Always followed by
	// OnClose(true), except for ErrHandlerPanic (a callback panicked; the
	// connection goes on, see ServerOptions.OnConnectionError).
	OnError func(err error)
	// OnClose: the connection closed or the connect attempt ended.
	OnClose func(hadError bool)

	// Reconnect turns on supervised reconnection (off by default, as in the
	// original): see ReconnectOptions.
	Reconnect *ReconnectOptions
	// OnReconnecting: a connect attempt failed or the connection was lost
	// (or the server sent remoteClose); the next attempt comes after delay.
	OnReconnecting func(attempt int, delay time.Duration, cause string)
	// OnGaveUp: the reconnection policy gave up.
	OnGaveUp func(attempts int, cause string)
	// OnDropped: tokens the client took and will never send (reason is
	// ErrBufferFull, ErrGaveUp or ErrClientClosed). Nothing is dropped
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
