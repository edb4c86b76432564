package actors

import (
	"crypto/tls"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// The client's status machine (status.go), row by row, with the status the
// handle reports inside each callback and right after each request.

// CONNECTING -> ONLINE (connect); ONLINE -> OFFLINE when the server closes
// the connection cleanly (close(false)); OFFLINE -> CONNECTING
// (Connect(delay)) -> ONLINE after the delay; ONLINE -> CLOSED (Close) ->
// OFFLINE (close(false)).
func TestClientStatusConnectEndConnect(t *testing.T) {
	peer := startTLSPeer(t, func(idx int, tc *tls.Conn, raw *net.TCPConn) {
		if idx == 0 {
			_ = tc.Close() // the first connection: closed cleanly at once
			return
		}
		holdOpen(idx, tc, raw)
	})
	r := newRecorder(t)
	c := r.startClient(peer.port(), nil)
	if st := c.Status(); st != CONNECTING && st != ONLINE {
		t.Fatalf("Status() after NewClient = %v, want CONNECTING (or ONLINE)", st)
	}
	r.next("connect", ONLINE)
	r.nextClose(false)
	wantStatus(t, c.Status(), OFFLINE, "after the server closed")
	if c.Send([]byte("x")) {
		t.Error("Send on an OFFLINE client without a buffer returned true")
	}
	if c.Close() {
		t.Error("Close() on an OFFLINE client returned true")
	}

	const delay = 300 * time.Millisecond
	asked := time.Now()
	if !c.Connect(delay) {
		t.Fatal("Connect() on an OFFLINE client returned false")
	}
	wantStatus(t, c.Status(), CONNECTING, "right after Connect(delay)")
	if c.Connect(0) {
		t.Error("a second Connect() while connecting returned true")
	}
	if e := r.next("connect", ONLINE); e.at.Sub(asked) < delay {
		t.Errorf("connected %v after Connect(%v)", e.at.Sub(asked), delay)
	}
	if !c.Close() {
		t.Fatal("Close() on a connected client returned false")
	}
	closing(t, c.Status())
	r.nextClose(false)
	wantStatus(t, c.Status(), OFFLINE, "after the close event")
	if c.Close() || c.Send([]byte("x")) {
		t.Error("Close() or Send() after the close returned true")
	}
	r.quiet(20 * time.Millisecond)
}

// ONLINE -> OFFLINE when the connection fails (reset): error, close(true).
func TestClientStatusConnectionFails(t *testing.T) {
	peer := startTLSPeer(t, reset)
	r := newRecorder(t)
	c := r.startClient(peer.port(), nil)
	r.next("connect", ONLINE)
	r.nextError(ErrConnection, -1)
	r.nextClose(true)
	wantStatus(t, c.Status(), OFFLINE, "after the failure")
}

// CONNECTING -> OFFLINE: the dial fails: error, close(true). Close() is then
// false; Connect(0) dials again.
func TestClientStatusDialFails(t *testing.T) {
	port := freePort(t) // nothing listens there
	r := newRecorder(t)
	c := r.startClient(port, nil)
	r.nextError(ErrDial, CONNECTING)
	r.nextClose(true)
	wantStatus(t, c.Status(), OFFLINE, "after a failed dial")
	if c.Close() {
		t.Error("Close() after a failed dial returned true")
	}
	if !c.Connect(0) {
		t.Fatal("Connect(0) after a failed dial returned false")
	}
	r.nextError(ErrDial, CONNECTING)
	r.nextClose(true)
}

// OFFLINE -> CONNECTING: the reconnect policy connects again after a lost
// connection (error, close(true) seen OFFLINE, reconnecting seen
// CONNECTING, connect seen ONLINE). Connect() is refused meanwhile.
func TestClientStatusReconnects(t *testing.T) {
	peer := startTLSPeer(t, func(idx int, tc *tls.Conn, raw *net.TCPConn) {
		if idx == 0 {
			reset(idx, tc, raw)
			return
		}
		holdOpen(idx, tc, raw)
	})
	r := newRecorder(t)
	c := r.startClient(peer.port(), func(o *ClientOptions) {
		o.Reconnect = &ReconnectOptions{Policy: fastRetry(20*time.Millisecond, 20*time.Millisecond)}
	})
	r.next("connect", ONLINE)
	r.nextError(ErrConnection, -1)
	r.nextClose(true)
	if e := r.next("retry", CONNECTING); e.attempt != 1 {
		t.Fatalf("reconnecting: %v, want attempt 1", e)
	}
	if c.Connect(0) {
		t.Error("Connect() while reconnecting returned true")
	}
	r.next("connect", ONLINE)
	if !c.Close() {
		t.Fatal("Close() returned false")
	}
	closing(t, c.Status())
	r.nextClose(false)
	r.quiet(50 * time.Millisecond) // no reconnect after Close
}

// OFFLINE -> OFFLINE: the reconnect policy gives up: the buffered tokens are
// dropped (ErrGaveUp), then the gave-up event, seen OFFLINE. Send and
// Close() are then false.
func TestClientStatusGivesUp(t *testing.T) {
	port := freePort(t)
	r := newRecorder(t)
	policy := fastRetry(10*time.Millisecond, 10*time.Millisecond)
	policy.Unlimited, policy.MaxRetries = false, 1
	c := r.startClient(port, func(o *ClientOptions) {
		o.Reconnect = &ReconnectOptions{Policy: policy, BufferSize: 1 << 10}
	})
	if !c.Send([]byte("buffered")) {
		t.Fatal("Send with a reconnect buffer returned false")
	}
	r.nextError(ErrDial, CONNECTING)
	r.nextClose(true)
	r.next("retry", CONNECTING)
	r.nextError(ErrDial, CONNECTING)
	r.nextClose(true)
	if e := r.next("dropped", OFFLINE); !isErr(e.err, ErrGaveUp) {
		t.Fatalf("dropped: %v, want ErrGaveUp", e)
	}
	if e := r.next("gaveup", OFFLINE); e.attempt != 2 {
		t.Fatalf("gave up: %v, want 2 attempts", e)
	}
	r.quiet(50 * time.Millisecond)
	wantStatus(t, c.Status(), OFFLINE, "after giving up")
	if c.Send([]byte("x")) || c.Close() {
		t.Error("Send() or Close() after giving up returned true")
	}
}

// Close while dialing (the TCP connection is up, the TLS handshake waits for
// a server that says nothing): close(false) at once, long before the
// handshake timeout, and the socket is closed. With and without reconnection.
func TestClientCloseWhileDialing(t *testing.T) {
	for _, reconnect := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "reconnect"}[reconnect], func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			accepted := make(chan net.Conn, 1)
			go func() {
				if c, err := ln.Accept(); err == nil {
					accepted <- c
				}
			}()
			r := newRecorder(t)
			c := r.startClient(ln.Addr().(*net.TCPAddr).Port, func(o *ClientOptions) {
				o.Limits.HandshakeTimeout = 5 * time.Second
				if reconnect {
					o.Reconnect = &ReconnectOptions{Policy: fastRetry(10*time.Millisecond, 10*time.Millisecond)}
				}
			})
			sc := recv(t, accepted, "the client's TCP connection")
			defer sc.Close()
			wantStatus(t, c.Status(), CONNECTING, "while the handshake waits")
			asked := time.Now()
			if !c.Close() {
				t.Fatal("Close() while dialing returned false")
			}
			closing(t, c.Status())
			if e := r.nextClose(false); e.at.Sub(asked) > time.Second {
				t.Errorf("the close came %v after Close()", e.at.Sub(asked))
			}
			_ = sc.SetReadDeadline(time.Now().Add(deadline))
			if _, err := sc.Read(make([]byte, 4096)); err == nil {
				// The ClientHello; the next read sees the end.
				_, err = sc.Read(make([]byte, 4096))
				if err == nil {
					t.Error("the client's socket is still open after its close event")
				}
			}
			r.quiet(30 * time.Millisecond) // no reconnect after Close
		})
	}
}

// Close during a Connect(delay) wait: close(false) at once, no dial after
// the delay.
func TestClientCloseDuringConnectDelay(t *testing.T) {
	peer := startTLSPeer(t, holdOpen)
	r := newRecorder(t)
	c := r.startClient(peer.port(), nil)
	r.next("connect", ONLINE)
	c.Close()
	r.nextClose(false)
	const delay = 300 * time.Millisecond
	if !c.Connect(delay) {
		t.Fatal("Connect returned false")
	}
	asked := time.Now()
	if !c.Close() {
		t.Fatal("Close() during the Connect delay returned false")
	}
	closing(t, c.Status())
	if e := r.nextClose(false); e.at.Sub(asked) >= delay {
		t.Errorf("the close came after the delay (%v)", e.at.Sub(asked))
	}
	r.quiet(delay + 50*time.Millisecond) // past the delay: no connect
	wantStatus(t, c.Status(), OFFLINE, "after the delay")
}

// Close during a reconnect backoff wait: close(false) at once (the buffered
// token is reported, ErrClientClosed), no further attempt.
func TestClientCloseDuringReconnectWait(t *testing.T) {
	const wait = 2 * time.Second
	r := newRecorder(t)
	c := r.startClient(freePort(t), func(o *ClientOptions) {
		o.Reconnect = &ReconnectOptions{Policy: fastRetry(wait, wait), BufferSize: 1 << 10}
	})
	r.nextError(ErrDial, CONNECTING)
	r.nextClose(true)
	r.next("retry", CONNECTING)
	if !c.Send([]byte("buffered")) {
		t.Fatal("Send during the reconnect wait returned false")
	}
	asked := time.Now()
	if !c.Close() {
		t.Fatal("Close() during the reconnect wait returned false")
	}
	closing(t, c.Status())
	if e := r.next("dropped", CLOSED); !isErr(e.err, ErrClientClosed) {
		t.Fatalf("dropped: %v, want ErrClientClosed", e)
	}
	if e := r.nextClose(false); e.at.Sub(asked) > wait/2 {
		t.Errorf("the close came %v after Close(), not before the retry (%v)", e.at.Sub(asked), wait)
	}
	r.quiet(50 * time.Millisecond)
	wantStatus(t, c.Status(), OFFLINE, "after the close")
}

// Connect called from OnClose after a failed dial, and from OnGaveUp when
// the reconnect policy gives up, returns true and dials again (and fails
// again here, and the callback connects again), 200 times in a row. A
// Connect that returned true must never be lost, also when it reaches the
// client actor before the ended connection or supervisor has finished
// stopping.
func TestClientConnectFromCallback(t *testing.T) {
	const rounds = 200
	for _, from := range []string{"close", "gaveup"} {
		t.Run(from, func(t *testing.T) {
			var handle atomic.Pointer[Client]
			ready := make(chan struct{})
			ends := make(chan int, rounds+1)
			n := 0 // the actor's
			again := func() {
				n++
				put(t, ends, n)
				if _, ok := awaitIn(t, ready, "the handle"); ok && n < rounds && !handle.Load().Connect(0) {
					t.Errorf("round %d: Connect(0) from the %s callback returned false", n, from)
				}
			}
			o := ClientOptions{Host: "127.0.0.1", Port: freePort(t), TLS: testCerts(t).ClientOptions()}
			if from == "close" {
				o.OnClose = func(bool) { again() }
			} else {
				policy := fastRetry(time.Millisecond, time.Millisecond)
				policy.Unlimited, policy.MaxRetries = false, 1
				o.Reconnect = &ReconnectOptions{Policy: policy}
				o.OnGaveUp = func(int, string) { again() }
			}
			c, err := NewClient(o)
			if err != nil {
				t.Fatal(err)
			}
			defer shutdownWithin(t, "client", c.Shutdown)
			handle.Store(c)
			close(ready)
			for got := 0; got < rounds; {
				select {
				case got = <-ends:
				case <-time.After(deadline):
					t.Fatalf("no event after round %d for %v: the Connect from the %s callback was lost (status %v)", got, deadline, from, c.Status())
				}
			}
		})
	}
}
