package tlsio

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// DefaultWriteTimeout is how long a peer may read nothing while we have data
// for it before its connection counts as a slow consumer.
const DefaultWriteTimeout = 10 * time.Second

// writeSlice is the largest piece written under one deadline, so that a big
// buffer sent to a peer that reads slowly but steadily is not a timeout: such
// a peer only has to take 64 KiB per write timeout.
const writeSlice = 64 << 10

// ErrWriteTimeout reports a slow consumer: the peer read nothing for the
// write timeout while data was waiting for it.
var ErrWriteTimeout = errors.New("tlsio: write timed out: peer is not reading (slow consumer)")

// WriteError is the error a WritePump stops with when a write fails. Written
// is how many bytes of the batch in hand were written in full before the
// failure; the rest of the batch may have reached the peer in part, or not.
type WriteError struct {
	Written int
	Err     error
}

// Error returns the cause's text.
func (e *WriteError) Error() string { return e.Err.Error() }

// Unwrap returns the cause (ErrWriteTimeout, for example).
func (e *WriteError) Unwrap() error { return e.Err }

// WritePump is the goroutine that writes a socket for the actor that owns it.
// The owner hands it one batch of buffers at a time with Write and waits for
// onWritten before handing the next, so frames queued meanwhile leave
// together.
type WritePump struct {
	in   chan [][]byte
	done chan struct{}
	once sync.Once
}

// StartWritePump starts the writer goroutine for conn. After each batch is
// written in full, onWritten(total length) is called; on the first error, or after
// Close, onStop is called once and the goroutine exits: with nil after Close,
// with a *WriteError after a failed write.
// timeout <= 0 disables the write deadline.
func StartWritePump(conn net.Conn, timeout time.Duration, onWritten func(n int), onStop func(error)) *WritePump {
	p := &WritePump{in: make(chan [][]byte, 1), done: make(chan struct{})}
	go p.run(conn, timeout, onWritten, onStop)
	return p
}

func (p *WritePump) run(conn net.Conn, timeout time.Duration, onWritten func(int), onStop func(error)) {
	defer close(p.done)
	for batch := range p.in {
		n := 0
		for _, b := range batch {
			w, err := writeAll(conn, b, timeout)
			n += w
			if err != nil {
				onStop(&WriteError{Written: n, Err: err})
				return
			}
		}
		onWritten(n)
	}
	onStop(nil)
}

// writeAll writes b in slices, each under its own deadline, and returns how
// many bytes were written.
func writeAll(conn net.Conn, b []byte, timeout time.Duration) (int, error) {
	written := 0
	for len(b) > 0 {
		piece := b[:min(len(b), writeSlice)]
		if timeout > 0 {
			if err := conn.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
				return written, fmt.Errorf("tlsio: set write deadline: %w", err)
			}
		}
		n, err := conn.Write(piece)
		b = b[n:]
		written += n
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return written, fmt.Errorf("%w (%v)", ErrWriteTimeout, timeout)
			}
			return written, fmt.Errorf("tlsio: write: %w", err)
		}
	}
	return written, nil
}

// Write hands a batch of buffers to the pump, to be written in order. It
// never blocks: it returns false if a batch is still waiting to be picked up.
// It must not be called after Close.
func (p *WritePump) Write(batch ...[]byte) bool {
	select {
	case p.in <- batch:
		return true
	default:
		return false
	}
}

// Close lets the pump finish the buffer it has, then stop.
func (p *WritePump) Close() {
	p.once.Do(func() { close(p.in) })
}

// Done is closed when the pump's goroutine has exited.
func (p *WritePump) Done() <-chan struct{} { return p.done }
