package tlsio

import (
	"crypto/tls"
	"net"
	"sync"
)

// Read pump defaults.
const (
	// DefaultReadBufferSize is the largest read a ReadPump makes at once.
	DefaultReadBufferSize = 64 << 10
	// DefaultReadWindow is how many chunks a ReadPump may have handed on and
	// not yet seen released before it stops reading.
	DefaultReadWindow = 4
	// minReadBufferSize is the read buffer an idle connection starts with; it
	// grows while reads fill it, so idle connections stay small.
	minReadBufferSize = 4 << 10
	// maxRecordPlaintext is the most a read of a *tls.Conn returns: the
	// plaintext of one TLS record. A larger buffer would only be left half
	// empty.
	maxRecordPlaintext = 16 << 10
)

// ReadConfig configures a ReadPump.
type ReadConfig struct {
	// BufferSize is the largest read at once (default DefaultReadBufferSize;
	// at most 16 KiB on a *tls.Conn, whose reads return one record at most).
	BufferSize int
	// Window is the number of chunks handed on and not yet released after
	// which the pump stops reading (default DefaultReadWindow). While it does
	// not read, TCP flow control pushes back on the peer.
	Window int
	// Before, if set, runs first in the pump's goroutine (for example the TLS
	// handshake). If it fails, the pump stops with its error and reads nothing.
	Before func() error
}

// ReadPump is the goroutine that reads a socket for the actor that owns it.
// Every successful read is passed to the onChunk function given to
// StartReadPump as a slice of the bytes read (its capacity may be the whole
// buffer's), which then belongs to the receiver: a read that filled at least
// half the buffer hands the buffer itself over (the pump takes a new one), a
// smaller one is copied, so that a few bytes never hold a large buffer. A
// receiver done with a chunk that
// nothing refers to any more may give it back with Recycle, and the pump
// reads into it again rather than allocate. When reading ends (error, EOF, or
// the owner closing the socket) onStop is called once with the cause and the
// goroutine exits.
//
// Reads of a *tls.Conn return one record at most, so its buffer is never
// larger than a record's plaintext (16 KiB), whatever BufferSize says.
type ReadPump struct {
	credits chan struct{}
	spare   chan []byte
	done    chan struct{}
	stop    chan struct{}
	once    sync.Once
}

// StartReadPump starts reading conn in a new goroutine. onChunk and onStop are
// called from that goroutine; they should only post a message to the owner.
func StartReadPump(conn net.Conn, cfg ReadConfig, onChunk func([]byte), onStop func(error)) *ReadPump {
	if cfg.BufferSize <= 0 {
		cfg.BufferSize = DefaultReadBufferSize
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultReadWindow
	}
	if _, ok := conn.(*tls.Conn); ok {
		cfg.BufferSize = min(cfg.BufferSize, maxRecordPlaintext)
	}
	p := &ReadPump{
		credits: make(chan struct{}, cfg.Window),
		spare:   make(chan []byte, cfg.Window),
		done:    make(chan struct{}),
		stop:    make(chan struct{}),
	}
	for i := 0; i < cfg.Window; i++ {
		p.credits <- struct{}{}
	}
	go p.run(conn, cfg, onChunk, onStop)
	return p
}

func (p *ReadPump) run(conn net.Conn, cfg ReadConfig, onChunk func([]byte), onStop func(error)) {
	defer close(p.done)
	if cfg.Before != nil {
		if err := cfg.Before(); err != nil {
			onStop(err)
			return
		}
	}
	size := min(minReadBufferSize, cfg.BufferSize)
	buf := make([]byte, size)
	for {
		// Two single-channel selects first: they lock no channel that is
		// empty, where one select over both locks both on every read.
		select {
		case <-p.stop:
			onStop(nil)
			return
		default:
		}
		select {
		case <-p.credits:
		default:
			select {
			case <-p.credits:
			case <-p.stop:
				onStop(nil)
				return
			}
		}
		n, err := conn.Read(buf)
		if n > 0 {
			size := len(buf)
			if n == size && size < cfg.BufferSize {
				size = min(2*size, cfg.BufferSize) // reads fill it: grow
			}
			if n >= len(buf)/2 {
				onChunk(buf[:n])
				buf = p.buffer(size)
			} else {
				// A copy allocated by append: the runtime zeroes none of
				// what it copies (make would, before copy wrote over it).
				onChunk(append([]byte(nil), buf[:n]...))
			}
		} else {
			p.Release() // nothing was handed on: the credit is still ours
		}
		if err != nil {
			onStop(err)
			return
		}
	}
}

// buffer returns a read buffer of size bytes: a recycled one if it is large
// enough, else a new one. The pump reads ahead of the receiver, which
// recycles the chunks it is done with later: the spares hold up to Window
// of them, so that a chunk given back while the pump had a buffer is not
// lost (with one spare, one read in four allocated, and zeroed, 16 KiB
// anew on a bulk load).
func (p *ReadPump) buffer(size int) []byte {
	select {
	case b := <-p.spare:
		if cap(b) >= size {
			return b[:size]
		}
	default:
	}
	return make([]byte, size)
}

// Recycle gives a chunk back for the pump to read into again. The caller
// must not use it, nor anything that refers to it, afterwards. It never
// blocks; a chunk the pump has no room for, or smaller than the smallest
// read buffer (a copy of a short read), is left to the garbage collector.
func (p *ReadPump) Recycle(chunk []byte) {
	if cap(chunk) < minReadBufferSize {
		return
	}
	select {
	case p.spare <- chunk[:cap(chunk)]:
	default:
	}
}

// Release gives back the credit of one chunk the owner has finished with.
// It never blocks; extra releases are ignored.
func (p *ReadPump) Release() {
	select {
	case p.credits <- struct{}{}:
	default:
	}
}

// Stop asks the pump to stop before its next read. A read already in progress
// is ended only by closing the socket (or a read deadline), which the owner
// does; either way onStop is called once.
func (p *ReadPump) Stop() {
	p.once.Do(func() { close(p.stop) })
}

// Done is closed when the pump's goroutine has exited.
func (p *ReadPump) Done() <-chan struct{} { return p.done }
