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
	// escape, token over the size limit, a frame cut short by the peer).
	ErrProtocol = errors.New("tokenserver: protocol error")
	// ErrHandshake wraps a TLS handshake that failed or did not finish in time.
	ErrHandshake = errors.New("tokenserver: TLS handshake failed")
	// ErrSlowConsumer reports a peer cut for not reading: it read nothing for
	// Limits.WriteTimeout while data waited for it (the error also wraps
	// tlsio.ErrWriteTimeout), or its outbound queue reached Limits.MaxQueue
	// (the error also wraps ErrQueueFull). A peer that is merely slower than
	// its producer is never cut: past Limits.HighWaterMark its connection
	// stops reading instead, and TCP pushes back.
	ErrSlowConsumer = errors.New("tokenserver: slow consumer")
	// ErrQueueFull reports an outbound queue that reached its hard cap,
	// Limits.MaxQueue. It comes wrapped in ErrSlowConsumer.
	ErrQueueFull = errors.New("tokenserver: outbound queue at its hard cap")
	// ErrListen wraps a failure to listen (for example a port in use) or to
	// accept connections (a permanent accept error).
	ErrListen = errors.New("tokenserver: listen failed")
	// ErrDial wraps a failure to connect to the server.
	ErrDial = errors.New("tokenserver: connect failed")
	// ErrConnection wraps a read or write failure of an established connection.
	ErrConnection = errors.New("tokenserver: connection failed")
	// ErrTooManyConnections reports a connection refused because the server
	// already has its maximum number of authenticated connections.
	ErrTooManyConnections = errors.New("tokenserver: too many connections")
	// ErrTooManyPending is why a socket is shut out before its TLS
	// handshake: ServerOptions.MaxPending sockets are held, and it was
	// evicted (silent) or refused. Such a socket gives no event; it is
	// counted (Stats.RefusedMaxPending) and logged once per burst, and the
	// client of a refused one sees tlsio.ErrHandshakeRefused.
	ErrTooManyPending = errors.New("tokenserver: too many connections in their TLS handshake")
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
	// ErrNotSent: the connection closed or failed before these tokens were
	// written, and (on a client) there is no reconnect buffer to keep them
	// for the next connection. None of their bytes left.
	ErrNotSent = errors.New("tokenserver: connection closed before the tokens were written")
	// ErrMaybeSent: these tokens were in the write that failed. Part of them,
	// or all, may have reached the peer; nobody can know (token/1 has no
	// acknowledgements). They are not sent again.
	ErrMaybeSent = errors.New("tokenserver: the write that held these tokens failed; they may have been sent")
	// ErrForcedClose reports a connection that did not close by itself within
	// the server's close deadline and was closed by force.
	ErrForcedClose = errors.New("tokenserver: connection force-closed after the close deadline")
	// ErrClosed is returned by Connection.WaitDrain when the connection is
	// dead.
	ErrClosed = errors.New("tokenserver: connection closed")
	// ErrInCallback is returned at once by Shutdown when it is called from
	// inside one of the callbacks of the same server or client: Shutdown
	// cannot wait for the callback that is waiting for it. The shutdown has
	// started all the same and completes once the callback returns; Done
	// tells when.
	ErrInCallback = errors.New("tokenserver: Shutdown called from inside a callback; it completes once the callback returns")
)
