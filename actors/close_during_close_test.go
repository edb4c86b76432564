package actors

import (
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// A Close that lands while a close event is being delivered (here from
// inside the callback, the surest way to land there) is answered by that
// close: no second close event, the reconnection stops, and the status ends
// OFFLINE. Before, the close took the Close's request as answered (OFFLINE)
// while the reconnection went on, and the request, arriving next, closed
// again: OFFLINE, CLOSED, OFFLINE, two close events.
func TestClientCloseDuringAFailedAttemptsClose(t *testing.T) {
	r := newRecorder(t)
	var handle atomic.Pointer[Client]
	ready := make(chan struct{})
	asked := make(chan bool, 1)
	var once atomic.Bool
	c := r.startClient(freePort(t), func(o *ClientOptions) {
		o.Reconnect = &ReconnectOptions{Policy: fastRetry(50*time.Millisecond, 50*time.Millisecond)}
		o.OnClose = func(had bool) {
			r.rec(event{kind: "close", had: had})
			if _, ok := awaitIn(t, ready, "the handle"); ok && once.CompareAndSwap(false, true) {
				put(t, asked, handle.Load().Close())
			}
		}
	})
	handle.Store(c)
	close(ready)
	r.nextError(ErrDial, CONNECTING)
	r.nextClose(true)
	if !recv(t, asked, "Close's result") {
		t.Fatal("Close() from the failed attempt's close returned false")
	}
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
	var handle atomic.Pointer[Server]
	ready := make(chan struct{})
	asked := make(chan bool, 1)
	var once atomic.Bool
	policy := fastRetry(50*time.Millisecond, 50*time.Millisecond)
	s := r.startServer(func(o *ServerOptions) {
		o.Port = busy.Addr().(*net.TCPAddr).Port
		o.ListenRetry = &policy
		o.OnError = func(err error) {
			r.rec(event{kind: "error", err: err})
			if _, ok := awaitIn(t, ready, "the handle"); ok && once.CompareAndSwap(false, true) {
				put(t, asked, handle.Load().Close())
			}
		}
	})
	handle.Store(s)
	close(ready)
	r.nextError(ErrListen, CONNECTING)
	if !recv(t, asked, "Close's result") {
		t.Fatal("Close() from the failed listen's error returned false")
	}
	r.nextClose(true)
	r.quiet(300 * time.Millisecond) // several retry delays: no retry, no listening
	wantStatus(t, s.Status(), OFFLINE, "after the close")
}
