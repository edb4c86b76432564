package actors

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/tokenserver/tokenserver/supervisor"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// The server's status machine (status.go), row by row, with the status the
// handle reports inside each callback and right after each request.

// closing checks the status right after Close returned true: CLOSED, or
// OFFLINE if the close has already finished; never what it was before.
func closing(t *testing.T, st Status) {
	t.Helper()
	if st != CLOSED && st != OFFLINE {
		t.Fatalf("Status() right after Close() = %v, want CLOSED (or OFFLINE once closed)", st)
	}
}

func serverPort(s *Server) int { return s.Addr().(*net.TCPAddr).Port }

// CONNECTING -> ONLINE (connect); ONLINE -> CLOSED (Close) -> OFFLINE
// (close(false), port released); OFFLINE -> CONNECTING (Connect(delay)) ->
// ONLINE after the delay, on the same port; Close again.
func TestServerStatusListenCloseConnect(t *testing.T) {
	r := newRecorder(t)
	s := r.startServer(nil)
	if st := s.Status(); st != CONNECTING && st != ONLINE {
		t.Fatalf("Status() after NewServer = %v, want CONNECTING (or ONLINE)", st)
	}
	r.next("connect", ONLINE)
	wantStatus(t, s.Status(), ONLINE, "after the connect event")
	port := serverPort(s)

	if !s.Close() {
		t.Fatal("Close() on a listening server returned false")
	}
	closing(t, s.Status())
	r.nextClose(false)
	wantStatus(t, s.Status(), OFFLINE, "after the close event")
	if s.Addr() != nil || !refuses(port) {
		t.Fatalf("after the close event: Addr() = %v, port %d refuses: %v", s.Addr(), port, refuses(port))
	}
	if s.Close() {
		t.Error("Close() on a closed server returned true")
	}

	const delay = 300 * time.Millisecond
	asked := time.Now()
	if !s.Connect(delay) {
		t.Fatal("Connect() on an OFFLINE server returned false")
	}
	wantStatus(t, s.Status(), CONNECTING, "right after Connect(delay)")
	if s.Connect(0) {
		t.Error("a second Connect() while connecting returned true")
	}
	e := r.next("connect", ONLINE)
	if waited := e.at.Sub(asked); waited < delay {
		t.Errorf("listening again %v after Connect(%v)", waited, delay)
	}
	if got := serverPort(s); got != port {
		t.Errorf("listening again on port %d, want the same port %d", got, port)
	}
	if !s.Close() {
		t.Fatal("Close() returned false")
	}
	r.nextClose(false)
	r.quiet(20 * time.Millisecond)
}

// CONNECTING -> OFFLINE: listening fails (port in use): error, close(true).
// Close() is then false; Connect(0) tries again (error, close again); once
// the port is free, Connect(0) listens.
func TestServerStatusListenFails(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := busy.Addr().(*net.TCPAddr).Port
	r := newRecorder(t)
	s := r.startServer(func(o *ServerOptions) { o.Port = port })
	r.nextError(ErrListen, CONNECTING)
	r.nextClose(true)
	wantStatus(t, s.Status(), OFFLINE, "after a failed listen")
	if s.Close() {
		t.Error("Close() on an OFFLINE server returned true")
	}
	if !s.Connect(0) {
		t.Fatal("Connect(0) after a failed listen returned false")
	}
	r.nextError(ErrListen, CONNECTING)
	r.nextClose(true)
	busy.Close()
	if !s.Connect(0) {
		t.Fatal("Connect(0) returned false")
	}
	r.next("connect", ONLINE)
	if got := serverPort(s); got != port {
		t.Errorf("listening on %d, want %d", got, port)
	}
}

// OFFLINE -> CONNECTING: the ListenRetry policy starts the listener again
// (error, close(true), then a retry event seen CONNECTING), until the port
// is free (connect); or until it gives up (gave up, seen OFFLINE).
func TestServerStatusListenRetry(t *testing.T) {
	t.Run("until listening", func(t *testing.T) {
		busy, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer busy.Close()
		r := newRecorder(t)
		policy := fastRetry(20*time.Millisecond, 20*time.Millisecond)
		s := r.startServer(func(o *ServerOptions) {
			o.Port = busy.Addr().(*net.TCPAddr).Port
			o.ListenRetry = &policy
		})
		r.nextError(ErrListen, CONNECTING)
		r.nextClose(true)
		if e := r.next("retry", CONNECTING); e.attempt != 1 {
			t.Fatalf("first retry: %v", e)
		}
		busy.Close()
		// Maybe another failed round before the port is seen free.
		for i := 0; ; i++ {
			e := recv(t, r.events, "events until listening")
			if e.kind == "connect" {
				if e.status != ONLINE {
					t.Fatalf("connect seen %v", e.status)
				}
				break
			}
			if i > 30 || (e.kind == "close" && e.status != OFFLINE) || (e.kind == "retry" && e.status != CONNECTING) {
				t.Fatalf("unexpected %v", e)
			}
		}
		if !s.Close() {
			t.Fatal("Close() returned false")
		}
		r.nextClose(false)
	})
	t.Run("gives up", func(t *testing.T) {
		busy, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer busy.Close()
		r := newRecorder(t)
		policy := fastRetry(10*time.Millisecond, 10*time.Millisecond)
		policy.Unlimited, policy.MaxRetries = false, 1
		s := r.startServer(func(o *ServerOptions) {
			o.Port = busy.Addr().(*net.TCPAddr).Port
			o.ListenRetry = &policy
		})
		r.nextError(ErrListen, CONNECTING)
		r.nextClose(true)
		r.next("retry", CONNECTING)
		r.nextError(ErrListen, CONNECTING)
		r.nextClose(true)
		if e := r.next("gaveup", OFFLINE); e.attempt != 2 {
			t.Fatalf("gave up: %v, want 2 attempts", e)
		}
		r.quiet(50 * time.Millisecond) // no more retries
		wantStatus(t, s.Status(), OFFLINE, "after giving up")
		if s.Close() {
			t.Error("Close() after giving up returned true")
		}
	})
}

// ONLINE -> CLOSED: accepting fails for good: error, then as Close (the
// client gets remoteClose and closes), then close(true). The failure is
// injected as the message the listener actor sends when its accept pump
// stops with an error; what is tested is the server actor's handling.
func TestServerStatusAcceptFails(t *testing.T) {
	r := newRecorder(t)
	s := r.startServer(nil)
	r.next("connect", ONLINE)
	port := serverPort(s)
	raw, err := tls.DialWithDialer(&net.Dialer{Timeout: deadline}, "tcp",
		net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), clientTLS(t))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(deadline))
	r.next("conn", ONLINE)
	// The client closes once it reads remoteClose.
	remoteClose := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(raw).ReadString('\n')
		if err == nil && line != "\\\n" {
			err = fmt.Errorf("read %q, want the remoteClose frame", line)
		}
		raw.Close()
		remoteClose <- err
	}()

	s.system.Root.Send(s.pid, listenerFailed{fmt.Errorf("%w: accept: %w", ErrListen, errors.New("injected"))})
	r.nextError(ErrListen, -1)
	if err := recv(t, remoteClose, "remoteClose at the client"); err != nil {
		t.Fatal(err)
	}
	r.next("connClose", CLOSED)
	r.nextClose(true)
	if !refuses(port) {
		t.Errorf("port %d still accepts after the close event", port)
	}
}

// CLOSED -> OFFLINE: a connection that ignores remoteClose is closed by
// force after CloseTimeout (ErrForcedClose), then the server's close comes;
// the status is CLOSED all along until then.
func TestServerStatusForcedClose(t *testing.T) {
	const closeTimeout = 200 * time.Millisecond
	r := newRecorder(t)
	s := r.startServer(func(o *ServerOptions) { o.Limits.CloseTimeout = closeTimeout })
	r.next("connect", ONLINE)
	raw, err := tls.DialWithDialer(&net.Dialer{Timeout: deadline}, "tcp",
		net.JoinHostPort("127.0.0.1", strconv.Itoa(serverPort(s))), clientTLS(t))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close() // it never reads, never closes
	r.next("conn", ONLINE)
	asked := time.Now()
	if !s.Close() {
		t.Fatal("Close() returned false")
	}
	closing(t, s.Status())
	e := r.next("connError", CLOSED)
	if !errors.Is(e.err, ErrForcedClose) {
		t.Fatalf("connection error %v, want ErrForcedClose", e.err)
	}
	if took := e.at.Sub(asked); took < closeTimeout {
		t.Errorf("forced %v after Close, before CloseTimeout %v", took, closeTimeout)
	}
	if e := r.next("connClose", CLOSED); !e.had {
		t.Error("the forced connection closed without hadError")
	}
	r.nextClose(false)
}

// Close during a Connect(delay) wait: close at once, and no listening after
// the delay.
func TestServerStatusCloseDuringConnectDelay(t *testing.T) {
	r := newRecorder(t)
	s := r.startServer(nil)
	r.next("connect", ONLINE)
	port := serverPort(s)
	s.Close()
	r.nextClose(false)
	const delay = 300 * time.Millisecond
	if !s.Connect(delay) {
		t.Fatal("Connect returned false")
	}
	asked := time.Now()
	if !s.Close() {
		t.Fatal("Close() during the Connect delay returned false")
	}
	closing(t, s.Status())
	if e := r.nextClose(false); e.at.Sub(asked) >= delay {
		t.Errorf("the close came after the delay (%v)", e.at.Sub(asked))
	}
	r.quiet(delay + 50*time.Millisecond) // past the delay: still nothing
	wantStatus(t, s.Status(), OFFLINE, "after the delay")
	if !refuses(port) {
		t.Errorf("port %d accepts", port)
	}
}

// Close during a ListenRetry wait: close at once, no further retry.
func TestServerStatusCloseDuringListenRetry(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	const wait = 2 * time.Second
	r := newRecorder(t)
	policy := fastRetry(wait, wait)
	s := r.startServer(func(o *ServerOptions) {
		o.Port = busy.Addr().(*net.TCPAddr).Port
		o.ListenRetry = &policy
	})
	r.nextError(ErrListen, CONNECTING)
	r.nextClose(true)
	r.next("retry", CONNECTING)
	asked := time.Now()
	if !s.Close() {
		t.Fatal("Close() during a listen retry wait returned false")
	}
	closing(t, s.Status())
	if e := r.nextClose(false); e.at.Sub(asked) > wait/2 {
		t.Errorf("the close came %v after Close, not before the retry (%v)", e.at.Sub(asked), wait)
	}
	r.quiet(50 * time.Millisecond)
	wantStatus(t, s.Status(), OFFLINE, "after the close")
}

// Connect called from OnClose after a failed listen (the original's retry
// pattern: server.on('close', () => server.connect(delay))) returns true
// and listens again: here the port stays taken, so error and close come
// again, and OnClose connects again, 200 times in a row. A Connect that
// returned true must never be lost, also when it reaches the server actor
// before the failed listener has finished stopping.
func TestServerConnectFromCloseCallback(t *testing.T) {
	const rounds = 200
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	var handle atomic.Pointer[Server]
	ready := make(chan struct{})
	closes := make(chan int, rounds+1)
	n := 0 // the actor's
	s, err := NewServer(ServerOptions{
		Host: "127.0.0.1", Port: busy.Addr().(*net.TCPAddr).Port, TLS: testCerts(t).ServerOptions(),
		OnClose: func(bool) {
			n++
			put(t, closes, n)
			if _, ok := awaitIn(t, ready, "the handle"); ok && n < rounds && !handle.Load().Connect(0) {
				t.Errorf("round %d: Connect(0) from OnClose after a failed listen returned false", n)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer shutdownWithin(t, "server", s.Shutdown)
	handle.Store(s)
	close(ready)
	for got := 0; got < rounds; {
		select {
		case got = <-closes:
		case <-time.After(deadline):
			t.Fatalf("no close event after round %d for %v: the Connect from OnClose was lost (status %v)", got, deadline, s.Status())
		}
	}
}

// With ListenRetry, a Connect from OnClose after a failed listen is served by
// the retry, or, when the policy gives up first, listens itself: it is never
// lost, so close events keep coming.
func TestServerConnectFromCloseCallbackWithListenRetry(t *testing.T) {
	const rounds = 60
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	policy := supervisor.DefaultPolicy()
	policy.Initial, policy.Max, policy.MaxRetries = time.Millisecond, time.Millisecond, 1
	var handle atomic.Pointer[Server]
	ready := make(chan struct{})
	closes := make(chan int, 4*rounds)
	n := 0 // the actor's
	s, err := NewServer(ServerOptions{
		Host: "127.0.0.1", Port: busy.Addr().(*net.TCPAddr).Port, TLS: testCerts(t).ServerOptions(),
		ListenRetry: &policy,
		OnClose: func(bool) {
			n++
			put(t, closes, n)
			if _, ok := awaitIn(t, ready, "the handle"); ok && n < rounds {
				handle.Load().Connect(0) // false while a retry is about to start: fine
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer shutdownWithin(t, "server", s.Shutdown)
	handle.Store(s)
	close(ready)
	for got := 0; got < rounds; {
		select {
		case got = <-closes:
		case <-time.After(deadline):
			t.Fatalf("no close event after round %d for %v: a Connect from OnClose was lost (status %v)", got, deadline, s.Status())
		}
	}
}
