package actors

import (
	"crypto/tls"
	"net"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tokenserver/tokenserver/wire"
)

// The messages inside the runtime, by direction. They never leave the
// process. Elsewhere are only the public ones, which a handler PID gets or
// sends (events.go), the timer's (timer.Fired), and those the listener and
// the admission keep to themselves (acceptStopped, slotRequest, slotDone).

// From the pumps and the dial goroutine to the connection actor.
type (
	// dialReady: the dial goroutine has put its dialDone in the actor's
	// channel.
	dialReady struct{}
	dialDone  struct {
		conn    *tls.Conn
		codec   wire.Codec   // the protocol negotiated
		welcome wire.Welcome // token/2: the server's answer to our HELLO
		err     error
	}
	// handshakeDone: the TLS handshake is done; codec is the protocol
	// negotiated. On a server, token/2's HELLO comes with it.
	handshakeDone struct {
		state tls.ConnectionState
		codec wire.Codec
		hello *wire.Hello
	}
	chunkRead    struct{ data []byte }
	readEnded    struct{ err error }
	chunkWritten struct{ n int }
	writeEnded   struct{ err error }
	// writeShut: our side is shut (close_notify, or FIN), or failed to be.
	writeShut struct{ err error }
	// pieceReady: the next piece of a token going out in pieces
	// (conn_pieces.go), escaped on a goroutine: part bytes of the token of
	// of, the last piece or not.
	pieceReady struct {
		piece []byte
		part  int
		last  bool
		of    *pieced
	}
)

// From handles and owners to the connection actor.
type (
	// sendsWaiting: frames wait on the shared sends stack (the doorbell of
	// the push that found it empty).
	sendsWaiting struct{}
	// closeRequest asks for a clean close (Close on a handle, or on the
	// owner of the connection). To a server or client actor it asks the
	// same of them.
	closeRequest struct{}
	// closeToReconnect asks a client's connection to close cleanly because
	// the server sent remoteClose; the reconnection goes on after it.
	closeToReconnect struct{}
	// overCap: a Send would have passed the hard cap of the queue.
	overCap struct{}
	// framesDone: the owner has delivered the oldest undelivered chunk; it
	// hands the frames slice back for reuse (the tokens are the user's).
	framesDone struct{ frames []wire.Frame }
	// forceClose closes the connection at once with err.
	forceClose struct{ err error }
)

// From the connection actor to its owner. connDown is always the last one.
type (
	// connUp: the handshake is done, the connection is live.
	connUp struct{ c *Connection }
	// connFrames: the frames of one read chunk, in order. The owner answers
	// with framesDone once it has delivered them. On token/2, seq is the
	// number of the first token, and those up to redelivered are flagged
	// as redelivered; both are 0 on token/1.
	connFrames struct {
		c                *Connection
		frames           []wire.Frame
		seq, redelivered uint64
	}
	// connFailed: the error event; connDown follows.
	connFailed struct {
		c   *Connection
		err error
	}
	// connDrained: the outbound queue went under the low-water mark after
	// passing the high-water mark.
	connDrained struct{ c *Connection }
	// connDown: the connection is closed and its pumps have exited. unsent
	// holds, in order, the frames taken and never written, encoded with
	// codec; maybeSent those in the write that failed (they come before
	// unsent).
	connDown struct {
		c         *Connection
		hadError  bool
		codec     wire.Codec
		maybeSent []byte
		unsent    []byte
		// dropReason, if set, is the reason of every dropped token
		// (ErrSessionExpired) instead of ErrMaybeSent and ErrNotSent.
		dropReason error
		// session: a client's token/2 session, everything it did not have
		// acknowledged in it, to go on over the next connection
		// (resumable) or to be reported.
		session   *sessionState
		resumable bool
		// handedOver: a server's new connection whose socket went to its
		// session's actor; it was never open, and gives no event.
		handedOver bool
	}
)

// From the Server and Client handles to their actors (closeRequest too).
type (
	// connectRequest asks to listen or dial again after delay.
	connectRequest struct{ delay time.Duration }
	// shutdownRequest asks the actor to stop once nothing runs.
	shutdownRequest struct{}
)

// From the Client handle to the client actor.
type (
	// bufferedToken: a token Send routed through the client actor.
	bufferedToken []byte
	// tokensDropped: tokens to report as dropped.
	tokensDropped struct {
		tokens [][]byte
		reason error
	}
)

// From the server and client actors to themselves: a child is gone
// (Terminated overtakes ordinary messages; these come behind what the child
// sent before it ended).
type (
	// listenerGone: the listener (or its supervisor) has terminated, and
	// every message it sent before has been handled.
	listenerGone struct{ pid *actor.PID }
	// runnerGone: the connection actor or its supervisor has terminated,
	// and every message it sent before has been handled.
	runnerGone struct{ pid *actor.PID }
)

// From the listener actor to the server actor.
type (
	// listenerUp: listening on addr.
	listenerUp struct{ addr net.Addr }
	// listenerFailed: listening or accepting failed (err wraps ErrListen).
	listenerFailed struct{ err error }
	// accepted: a new socket, now the server actor's.
	accepted struct{ conn net.Conn }
	// acceptRetrying: a temporary accept error; accepting again after delay.
	acceptRetrying struct {
		err   error
		delay time.Duration
	}
)
