package actors

import "errors"

// Errors reported in error events and returned by constructors. Each can be
// matched with errors.Is; errors from package wire (wire.ErrInvalidEscape,
// wire.ErrTokenTooLarge) and tlsio (tlsio.ErrHandshakeTimeout,
// tlsio.ErrWriteTimeout) reach the user wrapped, and match too.
var (
	// ErrInvalidOptions reports options that cannot work, at construction.
	ErrInvalidOptions = errors.New("tokenserver: invalid options")
	// ErrProtocol wraps every decoding error of a connection (invalid
	// escape, token over the size limit).
	ErrProtocol = errors.New("tokenserver: protocol error")
	// ErrHandshake wraps a TLS handshake that failed or did not finish in time.
	ErrHandshake = errors.New("tokenserver: TLS handshake failed")
	// ErrQueueFull reports a connection whose outbound queue passed its
	// high-water mark: the peer does not read as fast as it is sent to.
	ErrQueueFull = errors.New("tokenserver: outbound queue over its high-water mark")
	// ErrListen wraps a failure to listen (for example a port in use).
	ErrListen = errors.New("tokenserver: listen failed")
	// ErrDial wraps a failure to connect to the server.
	ErrDial = errors.New("tokenserver: connect failed")
	// ErrConnection wraps a read or write failure of an established connection.
	ErrConnection = errors.New("tokenserver: connection failed")
	// ErrTooManyConnections reports a connection refused because the server
	// already has its maximum number of connections.
	ErrTooManyConnections = errors.New("tokenserver: too many connections")
	// ErrHandlerPanic reports a user callback that panicked; the value is in
	// the message. It is the one error event not followed by close: the
	// token is skipped and the connection goes on.
	ErrHandlerPanic = errors.New("tokenserver: handler panicked")
	// ErrBufferFull: a token did not fit in the client's reconnect buffer.
	ErrBufferFull = errors.New("tokenserver: reconnect buffer full")
	// ErrGaveUp: the client's reconnection policy gave up; buffered tokens
	// are dropped with it.
	ErrGaveUp = errors.New("tokenserver: reconnection gave up")
	// ErrClientClosed: the client was closed while tokens waited in its
	// reconnect buffer.
	ErrClientClosed = errors.New("tokenserver: client closed")
	// ErrNotSent: the connection closed before these tokens were written,
	// and there is no reconnect buffer to keep them for the next one.
	ErrNotSent = errors.New("tokenserver: connection closed before the tokens were written")
	// ErrForcedClose reports a connection that did not close by itself within
	// the server's close deadline and was closed by force.
	ErrForcedClose = errors.New("tokenserver: connection force-closed after the close deadline")
)
