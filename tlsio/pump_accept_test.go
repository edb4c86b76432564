package tlsio

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"
)

// flakyListener is a real TCP listener whose first failures Accepts fail
// with err before any connection is taken.
type flakyListener struct {
	net.Listener
	failures int
	err      error
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.failures > 0 {
		l.failures--
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: l.err}
	}
	return l.Listener.Accept()
}

func TestAcceptPumpSurvivesTemporaryErrors(t *testing.T) {
	ln, err := Listen(context.Background(), "127.0.0.1:0", ListenConfig{})
	if err != nil {
		t.Fatal(err)
	}
	flaky := &flakyListener{Listener: ln, failures: 3, err: syscall.EMFILE}
	conns := make(chan net.Conn, 1)
	stopped := make(chan error, 1)
	delays := make(chan time.Duration, 8)
	p := StartAcceptPump(flaky, AcceptConfig{OnTemporary: func(err error, d time.Duration) {
		if !errors.Is(err, syscall.EMFILE) {
			t.Errorf("temporary error %v, want EMFILE", err)
		}
		delays <- d
	}}, func(c net.Conn) { conns <- c }, func(err error) { stopped <- err })

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	accepted := pumpWait(t, conns, "accepted connection after 3 temporary errors")
	accepted.Close()
	for i, want := range []time.Duration{MinAcceptBackoff, 2 * MinAcceptBackoff, 4 * MinAcceptBackoff} {
		if d := pumpWait(t, delays, fmt.Sprintf("delay %d", i)); d != want {
			t.Fatalf("delay %d = %v, want %v (doubling from %v)", i, d, want, MinAcceptBackoff)
		}
	}
	ln.Close()
	if err := pumpWait(t, stopped, "stop"); err != nil {
		t.Fatalf("stop after Close = %v, want nil", err)
	}
	pumpWait(t, p.Done(), "pump exit")
}

func TestAcceptPumpStopsOnPermanentError(t *testing.T) {
	ln, err := Listen(context.Background(), "127.0.0.1:0", ListenConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	flaky := &flakyListener{Listener: ln, failures: 1, err: syscall.EBADF}
	stopped := make(chan error, 1)
	p := StartAcceptPump(flaky, AcceptConfig{}, func(c net.Conn) { c.Close() }, func(err error) { stopped <- err })
	if err := pumpWait(t, stopped, "stop"); !errors.Is(err, syscall.EBADF) {
		t.Fatalf("stop error = %v, want EBADF", err)
	}
	pumpWait(t, p.Done(), "pump exit")
}

// A pump waiting out its longest backoff (1 s) stops at once on Stop,
// without waiting for it to end.
func TestAcceptPumpStopEndsABackoffWait(t *testing.T) {
	ln, err := Listen(context.Background(), "127.0.0.1:0", ListenConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	flaky := &flakyListener{Listener: ln, failures: 1 << 30, err: syscall.EMFILE}
	stopped := make(chan error, 1)
	var p *AcceptPump
	stopAt := make(chan time.Time, 1)
	ready := make(chan struct{})
	p = StartAcceptPump(flaky, AcceptConfig{OnTemporary: func(_ error, d time.Duration) {
		<-ready
		if d == MaxAcceptBackoff { // the pump sleeps a whole second after this
			stopAt <- time.Now()
			p.Stop()
		}
	}}, func(c net.Conn) { c.Close() }, func(err error) { stopped <- err })
	close(ready)
	if err := pumpWait(t, stopped, "stop"); err != nil {
		t.Fatalf("stop = %v, want nil", err)
	}
	pumpWait(t, p.Done(), "pump exit")
	if waited := time.Since(<-stopAt); waited >= MaxAcceptBackoff/2 {
		t.Fatalf("the pump took %v to stop in a %v backoff wait", waited, MaxAcceptBackoff)
	}
}

func TestIsTemporaryAcceptError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&net.OpError{Op: "accept", Err: syscall.EMFILE}, true},
		{&net.OpError{Op: "accept", Err: syscall.ENFILE}, true},
		{&net.OpError{Op: "accept", Err: syscall.ECONNABORTED}, true},
		{&net.OpError{Op: "accept", Err: syscall.EBADF}, false},
		{net.ErrClosed, false},
	} {
		if got := IsTemporaryAcceptError(tc.err); got != tc.want {
			t.Errorf("IsTemporaryAcceptError(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
