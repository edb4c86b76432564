package actors

import (
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// closeOnce calls Close on a handle from inside one of its callbacks, the
// first time the callback runs, and records Close's result.
type closeOnce struct {
	t      *testing.T
	handle atomic.Pointer[func() bool] // the handle's Close, once it exists
	ready  chan struct{}
	asked  chan bool
	once   atomic.Bool
}

func newCloseOnce(t *testing.T) *closeOnce {
	return &closeOnce{t: t, ready: make(chan struct{}), asked: make(chan bool, 1)}
}

// set gives the handle's Close, once the handle exists.
func (c *closeOnce) set(closeFn func() bool) {
	c.handle.Store(&closeFn)
	close(c.ready)
}

// fire is called from the callback.
func (c *closeOnce) fire() {
	if _, ok := awaitIn(c.t, c.ready, "the handle"); ok && c.once.CompareAndSwap(false, true) {
		put(c.t, c.asked, (*c.handle.Load())())
	}
}

// result is Close's result.
func (c *closeOnce) result(what string) {
	c.t.Helper()
	if !recv(c.t, c.asked, "Close's result") {
		c.t.Fatalf("Close() from %s returned false", what)
	}
}

// A Close that lands while a close event is being delivered (here from
// inside the callback, the surest way to land there) is answered by that
// close: no second close event, the reconnection stops, and the status ends
// OFFLINE. Before, the close took the Close's request as answered (OFFLINE)
// while the reconnection went on, and the request, arriving next, closed
// again: OFFLINE, CLOSED, OFFLINE, two close events.
func TestClientCloseDuringAFailedAttemptsClose(t *testing.T) {
	r := newRecorder(t)
	co := newCloseOnce(t)
	c := r.startClient(freePort(t), func(o *ClientOptions) {
		o.Reconnect = &ReconnectOptions{Policy: fastRetry(50*time.Millisecond, 50*time.Millisecond)}
		o.OnClose = func(had bool) {
			r.rec(event{kind: "close", had: had})
			co.fire()
		}
	})
	co.set(c.Close)
	r.nextError(ErrDial, CONNECTING)
	r.nextClose(true)
	co.result("the failed attempt's close")
	r.quiet(300 * time.Millisecond) // several retry delays: no retry, no second close
	wantStatus(t, c.Status(), OFFLINE, "after the close")
}

// The same on a server with ListenRetry: a Close asked for while a failed
// listen's error event runs (status CONNECTING) is answered by the close
// that follows; the retry does not listen again.
func TestServerCloseDuringAFailedListensError(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	r := newRecorder(t)
	co := newCloseOnce(t)
	policy := fastRetry(50*time.Millisecond, 50*time.Millisecond)
	s := r.startServer(func(o *ServerOptions) {
		o.Port = busy.Addr().(*net.TCPAddr).Port
		o.ListenRetry = &policy
		o.OnError = func(err error) {
			r.rec(event{kind: "error", err: err})
			co.fire()
		}
	})
	co.set(s.Close)
	r.nextError(ErrListen, CONNECTING)
	co.result("the failed listen's error")
	r.nextClose(true)
	r.quiet(300 * time.Millisecond) // several retry delays: no retry, no listening
	wantStatus(t, s.Status(), OFFLINE, "after the close")
}

// A Connect that comes while the cycle stops after a Close answered by the
// cycle's own close dials once the cycle has stopped: it is not lost, the
// status stuck at CONNECTING. The Connect is asked from inside OnDropped,
// which the Close calls for the reconnect buffer's token before it stops
// the reconnection's supervisor: the cycle is still stopping then.
func TestClientConnectAfterAnAnsweredClose(t *testing.T) {
	r := newRecorder(t)
	ready := make(chan struct{})
	asked := make(chan bool, 2) // Send's, Close's and Connect's results
	var c *Client
	closes := 0 // callbacks run one at a time
	c = r.startClient(freePort(t), func(o *ClientOptions) {
		o.Reconnect = &ReconnectOptions{Policy: fastRetry(50*time.Millisecond, time.Hour), BufferSize: 1 << 10}
		o.OnClose = func(had bool) {
			r.rec(event{kind: "close", had: had})
			if _, ok := awaitIn(t, ready, "the handle"); !ok {
				return
			}
			switch closes++; closes {
			case 1: // the first failed attempt's: a token for the buffer
				put(t, asked, c.Send([]byte("kept")))
			case 2: // the second's: a Close, which this close answers
				put(t, asked, c.Close())
			}
		}
		o.OnDropped = func(_ [][]byte, err error) {
			r.rec(event{kind: "dropped", err: err})
			put(t, asked, c.Connect(0))
		}
	})
	close(ready)
	r.nextError(ErrDial, CONNECTING)
	r.nextClose(true)
	if !recv(t, asked, "Send's result") {
		t.Fatal("Send() returned false while reconnecting with a buffer")
	}
	r.next("retry", CONNECTING)
	r.nextError(ErrDial, CONNECTING)
	r.nextClose(true)
	if !recv(t, asked, "Close's result") {
		t.Fatal("Close() from the close returned false")
	}
	if ev := r.next("dropped", -1); !errors.Is(ev.err, ErrClientClosed) {
		t.Fatalf("dropped with %v, want ErrClientClosed", ev.err)
	}
	if !recv(t, asked, "Connect's result") {
		t.Fatal("Connect(0) from OnDropped returned false")
	}
	// The Connect dials (nothing listens): its failure shows it did.
	r.nextError(ErrDial, CONNECTING)
	r.nextClose(true)
}
