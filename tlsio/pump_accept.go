package tlsio

import (
	"errors"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// Accept backoff after a temporary error, as net/http's Server does.
const (
	// MinAcceptBackoff is the first wait after a temporary accept error.
	MinAcceptBackoff = 5 * time.Millisecond
	// MaxAcceptBackoff caps the wait; it doubles from MinAcceptBackoff.
	MaxAcceptBackoff = time.Second
)

// AcceptConfig configures an AcceptPump.
type AcceptConfig struct {
	// OnTemporary, if set, is called from the pump's goroutine after each
	// temporary accept error (out of file descriptors, a connection aborted
	// before it was accepted...) with the error and the wait before the next
	// try. It should only post a message to the owner.
	OnTemporary func(err error, delay time.Duration)
}

// AcceptPump is the goroutine that accepts connections on a listener for
// the actor that owns it. Temporary errors (see IsTemporaryAcceptError) never
// stop it: it waits, from MinAcceptBackoff doubling up to MaxAcceptBackoff,
// and accepts again, so a process that runs out of descriptors recovers once
// some are released. It stops when the listener is closed or Stop is called
// (onStop(nil)), or on a permanent error (onStop(err)).
type AcceptPump struct {
	done chan struct{}
	stop chan struct{}
	once sync.Once
}

// StartAcceptPump starts accepting on ln in a new goroutine. onConn is called
// with every accepted connection, which then belongs to the callee; onConn,
// onStop and cfg.OnTemporary are called from that goroutine and should only
// post a message to the owner. Closing ln stops the pump; Stop as well ends
// a backoff wait at once.
func StartAcceptPump(ln net.Listener, cfg AcceptConfig, onConn func(net.Conn), onStop func(error)) *AcceptPump {
	p := &AcceptPump{done: make(chan struct{}), stop: make(chan struct{})}
	go p.run(ln, cfg, onConn, onStop)
	return p
}

func (p *AcceptPump) run(ln net.Listener, cfg AcceptConfig, onConn func(net.Conn), onStop func(error)) {
	defer close(p.done)
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err == nil {
			delay = 0
			onConn(c)
			continue
		}
		if errors.Is(err, net.ErrClosed) {
			onStop(nil)
			return
		}
		if !IsTemporaryAcceptError(err) {
			onStop(err)
			return
		}
		delay = min(max(2*delay, MinAcceptBackoff), MaxAcceptBackoff)
		if cfg.OnTemporary != nil {
			cfg.OnTemporary(err, delay)
		}
		wait := time.NewTimer(delay)
		select {
		case <-wait.C:
		case <-p.stop:
			wait.Stop()
			onStop(nil)
			return
		}
	}
}

// Stop ends the pump: at once if it waits after a temporary error, else
// when its Accept returns, which closing the listener makes happen. Its
// owner closes the listener too, and may then wait for Done.
func (p *AcceptPump) Stop() { p.once.Do(func() { close(p.stop) }) }

// Done is closed when the pump's goroutine has exited.
func (p *AcceptPump) Done() <-chan struct{} { return p.done }

// IsTemporaryAcceptError reports whether an error of Accept is worth a retry:
// the process or the system is out of file descriptors or buffer memory
// (EMFILE, ENFILE, ENOBUFS, ENOMEM), a connection was aborted or reset before
// it could be accepted (ECONNABORTED, ECONNRESET, EPROTO), an interrupted
// call, or a timeout. Each of these passes; the listener itself is fine.
func IsTemporaryAcceptError(err error) bool {
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS,
		syscall.ENOMEM, syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EPROTO, syscall.EINTR} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return errors.Is(err, os.ErrDeadlineExceeded)
}
