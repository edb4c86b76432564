package actors

import (
	"fmt"
	"time"

	"github.com/tokenserver/tokenserver/tlsio"
	"github.com/tokenserver/tokenserver/wire"
)

// Defaults of Limits.
const (
	// DefaultHighWaterMark is the outbound queue size, in bytes, past which a
	// connection stops reading its socket until the queue is back under the
	// low-water mark (half the high-water mark unless set).
	DefaultHighWaterMark = 8 << 20
	// DefaultMaxQueue is the hard cap of the outbound queue, in bytes: a peer
	// whose queue reaches it is cut as a slow consumer (as nats-server's
	// max_pending).
	DefaultMaxQueue = 64 << 20
	// DefaultCloseTimeout is how long Server.Close waits for clients to close
	// after remoteClose before it closes them by force, and how long a
	// connection closing cleanly waits for the peer's side to close.
	DefaultCloseTimeout = 5 * time.Second
)

// Limits bound what one connection may cost. Zero values take the defaults.
//
// Flow control: past HighWaterMark bytes waiting to be written, the
// connection stops reading its socket, so TCP pushes back on a peer that
// sends faster than it reads; it reads again once the queue is under
// LowWaterMark, and emits a drain event. Send keeps taking tokens meanwhile.
// Only a peer that reads nothing for WriteTimeout while data waits, or whose
// queue reaches MaxQueue, is cut (ErrSlowConsumer). On the receiving side, at
// most ReadWindow chunks wait for the handler (callbacks, or a handler PID
// until it returns Credit) before the connection stops reading.
type Limits struct {
	// MaxTokenSize is the largest decoded token accepted from the peer
	// (default wire.DefaultMaxTokenSize, 16 MiB). A larger one is an error.
	MaxTokenSize int
	// HighWaterMark is the outbound queue size in bytes past which the
	// connection stops reading (default 8 MiB).
	HighWaterMark int
	// LowWaterMark is the outbound queue size in bytes under which a
	// connection paused by HighWaterMark reads again and emits a drain event
	// (default HighWaterMark/2).
	LowWaterMark int
	// MaxQueue is the hard cap of the outbound queue in bytes: Send returns
	// false and the connection fails with ErrSlowConsumer when it would pass
	// it (default 64 MiB). One token is always taken by an empty queue,
	// whatever its size.
	MaxQueue int
	// WriteTimeout is how long the peer may read nothing while data waits
	// for it before the connection fails as a slow consumer (default 10 s;
	// negative disables it). The write deadline is moved lazily, so a stalled
	// write fails after between WriteTimeout and 9/8 of it.
	WriteTimeout time.Duration
	// HandshakeTimeout bounds the TLS handshake (default
	// DefaultHandshakeTimeout, 30 s); a server's runs from accept, the
	// wait for a turn in the admission queue included.
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
	if l.LowWaterMark == 0 {
		l.LowWaterMark = l.HighWaterMark / 2
	}
	if l.MaxQueue == 0 {
		l.MaxQueue = max(DefaultMaxQueue, l.HighWaterMark)
	}
	if l.WriteTimeout == 0 {
		l.WriteTimeout = tlsio.DefaultWriteTimeout
	}
	if l.HandshakeTimeout == 0 {
		l.HandshakeTimeout = DefaultHandshakeTimeout
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
	bad := func(format string, args ...any) (Limits, error) {
		return l, fmt.Errorf("%w: "+format, append([]any{ErrInvalidOptions}, args...)...)
	}
	switch {
	case l.MaxTokenSize < 0:
		return bad("MaxTokenSize %d is negative", l.MaxTokenSize)
	case l.HighWaterMark < 0:
		return bad("HighWaterMark %d is negative", l.HighWaterMark)
	case l.LowWaterMark < 0 || l.LowWaterMark >= l.HighWaterMark:
		return bad("LowWaterMark %d must be in [0, HighWaterMark %d)", l.LowWaterMark, l.HighWaterMark)
	case l.MaxQueue < l.HighWaterMark:
		return bad("MaxQueue %d is under HighWaterMark %d", l.MaxQueue, l.HighWaterMark)
	case l.HandshakeTimeout < 0:
		return bad("HandshakeTimeout %v is negative", l.HandshakeTimeout)
	case l.ReadBufferSize < 0 || l.ReadWindow < 0:
		return bad("ReadBufferSize and ReadWindow must not be negative")
	case l.CloseTimeout < 0:
		return bad("CloseTimeout %v is negative", l.CloseTimeout)
	}
	return l, nil
}
