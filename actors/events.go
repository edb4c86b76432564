package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// The event messages a handler PID receives. They carry plain data only
// (bytes, strings, numbers, PIDs) so that they can be defined as protobuf
// messages and reach a handler on another node. Conn is the PID of the
// connection actor concerned, nil for events of the server or client itself;
// a handler replies to a token by sending SendToken to Conn.
//
// Events of one connection arrive in order. An ErrorOccurred is always
// followed by a Closed with HadError set.

// Listening is the server's connect event: it listens on Addr.
type Listening struct {
	Addr string
}

// Connected is the client's connect event, and the server's event for a new
// connection whose TLS handshake succeeded.
type Connected struct {
	Conn       *actor.PID
	ConnID     uint64
	RemoteAddr string
	LocalAddr  string
}

// TokenReceived is the token event. Data belongs to the receiver.
type TokenReceived struct {
	Conn   *actor.PID
	ConnID uint64
	Data   []byte
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

// SendToken asks the connection actor it is sent to to send Data as a token.
// It is how a handler actor (local or remote) replies.
type SendToken struct {
	Data []byte
}

// CloseConnection asks the connection actor it is sent to to close cleanly.
type CloseConnection struct{}

// Reconnecting: the client lost its connection or failed to connect, and
// connects again after Delay. Attempt counts from 1 in a series of failures.
type Reconnecting struct {
	Attempt int
	Delay   time.Duration
	Cause   string
}

// ReconnectGaveUp: the client's reconnection policy gave up after Attempts.
type ReconnectGaveUp struct {
	Attempts int
	Cause    string
}

// TokensDropped carries tokens the client took and will never send: its
// reconnect buffer was full, the reconnection gave up, or Close was called
// while they waited. Code says which (see the Code constants).
type TokensDropped struct {
	Tokens  [][]byte
	Code    string
	Message string
}
