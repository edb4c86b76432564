package actors

import (
	"crypto/tls"

	"github.com/tokenserver/tokenserver/wire"
)

// Messages between the pumps, the connection actor and its owner. They never
// leave the process.

// From the pumps to the connection actor.
type (
	chunkRead     struct{ data []byte }
	readEnded     struct{ err error }
	handshakeDone struct{ state tls.ConnectionState }
	chunkWritten  struct{ n int }
	writeEnded    struct{ err error }
)

// From handles and owners to the connection actor.
type (
	// outFrame is one encoded frame to send, already counted in the queue.
	outFrame []byte
	// closeRequest asks for a clean close.
	closeRequest struct{}
	// queueFull reports a Send refused at the high-water mark.
	queueFull struct{}
	// framesDone says the owner delivered a batch: read one chunk more.
	framesDone struct{}
	// forceClose closes the connection at once with err.
	forceClose struct{ err error }
)

// From the connection actor to its owner.
type (
	// connUp: the handshake is done, the connection is live.
	connUp struct{ c *Connection }
	// connFrames: the frames of one read chunk, in order. The owner answers
	// with framesDone once it has delivered them.
	connFrames struct {
		c      *Connection
		frames []wire.Frame
	}
	// connFailed: the error event; connDown always follows.
	connFailed struct {
		c   *Connection
		err error
	}
	// connUnsent: encoded frames Send took that were never written (the
	// connection closed first). Frames the writer had are not among them:
	// whether they reached the peer is unknown.
	connUnsent struct {
		c      *Connection
		frames []byte
	}
	// connDown: the connection is closed and its pumps have exited.
	connDown struct {
		c        *Connection
		hadError bool
	}
)
