package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// The event messages a handler PID receives, and the messages it sends back.
// They carry plain data only (bytes, strings, numbers, PIDs) so that they can
// be defined as protobuf messages and reach a handler on another node. Conn
// is the PID of the connection actor concerned, nil for events of the server
// or client itself; a handler replies to a token by sending SendToken to
// Conn, and returns flow-control credit by sending Credit to Conn (see
// CreditMiddleware).
//
// Events of one connection arrive in order. An ErrorOccurred is always
// followed by a Closed with HadError set, except for the code
// CodeHandlerPanic.

// Listening is the server's connect event: it listens on Addr.
type Listening struct {
	Addr string
}

// Connected is the client's connect event, and the server's event for a new
// connection whose TLS handshake succeeded.
//
// On token/2, Session is the session's id in hex ("" on token/1), and on a
// server PeerReceived is Connection.PeerReceived: how many of the session's
// data frames the client had received from other servers before this one.
type Connected struct {
	Conn         *actor.PID
	ConnID       uint64
	RemoteAddr   string
	LocalAddr    string
	Session      string
	PeerReceived uint64
}

// TokenReceived is the token event. Data belongs to the receiver. A handler
// PID returns one Credit token per TokenReceived it has processed (the
// CreditMiddleware does it): until it does, its connection reads at most
// Limits.ReadWindow chunks ahead.
//
// On token/2 Seq is the token's number in its session (1, 2, ...; 0 on
// token/1): a handler that needs exactly once across server restarts, or
// across the front nodes of a cluster, drops a number it has seen. A token
// flagged Redelivered may have been delivered before: its client sent it
// again to a server that had lost its session.
//
// Session is the token/2 session's id in hex ("" on token/1): a session
// lives across its client's connections, and across a cluster's front nodes.
type TokenReceived struct {
	Conn        *actor.PID
	ConnID      uint64
	Data        []byte
	Seq         uint64
	Redelivered bool
	Session     string
}

// RemoteClosed is the client's remoteClose event: the server is closing and
// asks the client to close its side.
type RemoteClosed struct {
	Conn   *actor.PID
	ConnID uint64
}

// ErrorOccurred is the error event. Code is a stable short name of the cause
// (see the Code constants) and Message the full error text.
type ErrorOccurred struct {
	Conn    *actor.PID
	ConnID  uint64
	Code    string
	Message string
}

// Closed is the close event. HadError is true when an error event came first.
type Closed struct {
	Conn     *actor.PID
	ConnID   uint64
	HadError bool
}

// Drained is the drain event: the outbound queue of the connection went past
// Limits.HighWaterMark (so the connection stopped reading) and is now back
// under Limits.LowWaterMark. Producers that are not driven by reads send
// again on it, as on Node's 'drain': after a Send that left
// Connection.Queued() over the high-water mark, a drain event follows
// (unless the connection closes first). A producer may see one more than it
// waited for: it looks at Queued() again before it waits.
type Drained struct {
	Conn   *actor.PID
	ConnID uint64
}

// TokensDropped carries tokens that were taken (by Send, SendBatch or a
// SendToken message) and will never be written: Code says why (see the Code
// constants). CodeMaybeSent marks tokens that were in the write that failed
// and may have reached the peer. Conn is the connection they were for, nil
// for tokens a client dropped from its reconnect buffer.
type TokensDropped struct {
	Conn    *actor.PID
	ConnID  uint64
	Tokens  [][]byte
	Code    string
	Message string
}

// Reconnecting: the client lost its connection or failed to connect (or the
// server failed to listen, with ListenRetry), and tries again after Delay.
// Attempt counts from 1 in a series of failures.
type Reconnecting struct {
	Attempt int
	Delay   time.Duration
	Cause   string
}

// ReconnectGaveUp: the reconnection (or listen retry) policy gave up after
// Attempts.
type ReconnectGaveUp struct {
	Attempts int
	Cause    string
}

// SendToken asks the connection actor it is sent to to send Data as a token.
// It is how a handler actor (local or remote) replies. A SendToken that
// arrives once the connection is closing is reported in a TokensDropped.
type SendToken struct {
	Data []byte
}

// CloseConnection asks the connection actor it is sent to to close cleanly.
type CloseConnection struct{}

// Credit tells the connection actor it is sent to that its handler has
// processed Tokens more TokenReceived messages, so that it may read on. It
// is the flow control between a connection and a handler PID, local or on
// another node; CreditMiddleware sends it for a handler.
type Credit struct {
	Tokens int
}
