package tlsio

import (
	"crypto/tls"
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
	// w writes the batches: the pump's goroutine, or WriteNow's caller
	// while the pump holds no batch, never both at once.
	w batchWriter
	// queue reports whether the socket's send queue is empty (nil: it
	// cannot tell, and WriteNow never writes).
	queue func() bool
	// failed is the error of a WriteNow that failed, set before the pump is
	// closed: the pump stops with it.
	failed error
}

// StartWritePump starts the writer goroutine for conn. After each batch is
// written in full, onWritten(total length) is called; on the first error, or after
// Close, onStop is called once and the goroutine exits: with nil after Close,
// with a *WriteError after a failed write.
// timeout <= 0 disables the write deadline; otherwise a write that makes no
// progress fails after between timeout and 9/8 of it (see deadline).
func StartWritePump(conn net.Conn, timeout time.Duration, onWritten func(n int), onStop func(error)) *WritePump {
	p := &WritePump{in: make(chan [][]byte, 1), done: make(chan struct{}),
		w: batchWriter{conn: conn, timeout: timeout}, queue: sendQueueProbe(conn)}
	if _, ok := conn.(*tls.Conn); ok {
		p.w.record = maxRecordPlaintext
	}
	go p.run(onWritten, onStop)
	return p
}

func (p *WritePump) run(onWritten func(int), onStop func(error)) {
	defer close(p.done)
	for batch := range p.in {
		n, err := p.w.write(batch)
		if err != nil {
			onStop(&WriteError{Written: n, Err: err})
			return
		}
		onWritten(n)
	}
	onStop(p.failed)
}

// MaxWriteNow is the largest batch WriteNow writes: small enough that a
// socket whose send queue is empty takes it whole at once, whatever its
// send buffer (16 KiB at least on Linux, for the data and its overhead).
const MaxWriteNow = 4 << 10

// WriteNow writes batch on the caller's goroutine, at once, instead of
// handing it to the pump, when that cannot block: the batch holds at most
// MaxWriteNow bytes and the socket's send queue is empty (every byte sent
// before is acknowledged by the peer; Linux only, elsewhere WriteNow never
// writes). It must be called only while the pump holds no batch, as Write.
// It reports whether it wrote, and how many bytes it wrote in full. A write
// that fails stops the pump as its own failed write would: onStop gets the
// *WriteError, which err is too. On success the pump calls nothing: the
// caller settles the batch itself.
//
// This saves the hand-off to the pump's goroutine, which on a round trip
// costs a thread wake-up (see the README's performance section).
func (p *WritePump) WriteNow(batch [][]byte) (n int, wrote bool, err error) {
	if p.queue == nil {
		return 0, false, nil
	}
	size := 0
	for _, b := range batch {
		size += len(b)
	}
	if size > MaxWriteNow || !p.queue() {
		return 0, false, nil
	}
	n, werr := p.w.write(batch)
	if werr != nil {
		err = &WriteError{Written: n, Err: werr}
		p.failed = err
		p.Close()
	}
	return n, true, err
}

// batchWriter writes the batches of a pump. On a *tls.Conn every Write
// becomes records of at most 16 KiB of plaintext, each its own syscall, and
// a batch of frames of any sizes would leave a short record at the end of
// each buffer. So the writer passes whole records' worth: runs of full
// records go out straight from the buffers, and the pieces between them are
// gathered in a record-sized buffer of its own first. Only the last record
// of a batch may be short.
type batchWriter struct {
	conn    net.Conn
	timeout time.Duration
	d       deadline
	record  int    // plaintext bytes per record; 0: write buffers as they are
	stage   []byte // the record being gathered, from stages during a batch
}

// stages holds record-sized buffers between batches, so that an idle
// connection keeps none.
var stages = sync.Pool{New: func() any { b := make([]byte, 0, maxRecordPlaintext); return &b }}

// write writes batch in order and returns how many of its bytes were
// written in full, and the first error.
func (w *batchWriter) write(batch [][]byte) (int, error) {
	if w.record == 0 || len(batch) == 1 {
		n := 0
		for _, b := range batch {
			k, err := writeAll(w.conn, b, w.timeout, &w.d)
			n += k
			if err != nil {
				return n, err
			}
		}
		return n, nil
	}
	sp := stages.Get().(*[]byte)
	w.stage = (*sp)[:0]
	defer func() {
		*sp = w.stage[:0]
		w.stage = nil
		stages.Put(sp)
	}()
	n := 0
	flush := func() error {
		k, err := writeAll(w.conn, w.stage, w.timeout, &w.d)
		n += k
		w.stage = w.stage[:0]
		return err
	}
	for _, b := range batch {
		if len(w.stage) > 0 {
			k := copy(w.stage[len(w.stage):w.record], b)
			w.stage, b = w.stage[:len(w.stage)+k], b[k:]
			if len(w.stage) < w.record {
				continue // b is all in the record being gathered
			}
			if err := flush(); err != nil {
				return n, err
			}
		}
		if full := len(b) - len(b)%w.record; full > 0 {
			k, err := writeAll(w.conn, b[:full], w.timeout, &w.d)
			n += k
			if err != nil {
				return n, err
			}
			b = b[full:]
		}
		w.stage = append(w.stage, b...)
	}
	if len(w.stage) > 0 {
		if err := flush(); err != nil {
			return n, err
		}
	}
	return n, nil
}

// deadline is the write deadline a pump has set on its socket. Setting one
// costs a timer update in the runtime, so it is moved only when less than
// the timeout is left: then it is set a slack further (timeout/8), and the
// next writes in that slack use it as it is. Every write thus starts with at
// least the timeout ahead of it, and at most the timeout and its slack.
type deadline struct{ at time.Time }

// ensure makes sure the deadline is at least timeout after now.
func (d *deadline) ensure(conn net.Conn, timeout time.Duration) error {
	now := time.Now()
	if !d.at.IsZero() && d.at.Sub(now) >= timeout {
		return nil
	}
	at := now.Add(timeout + timeout/8)
	if err := conn.SetWriteDeadline(at); err != nil {
		return err
	}
	d.at = at
	return nil
}

// writeAll writes b in slices, each with at least the timeout to go (see
// deadline), and returns how many bytes were written.
func writeAll(conn net.Conn, b []byte, timeout time.Duration, d *deadline) (int, error) {
	written := 0
	for len(b) > 0 {
		piece := b[:min(len(b), writeSlice)]
		if timeout > 0 {
			if err := d.ensure(conn, timeout); err != nil {
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
