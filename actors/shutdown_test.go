package actors

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Shutdown called from inside a callback of the same server or client
// (issue 12: it waited until its context expired, forever with
// context.Background(), because the actor it waits for is running the
// callback). It returns ErrInCallback at once; the shutdown goes on and
// Done is closed soon after the callback returns.

// shutdownResult is what a Shutdown called from a callback returned, and how
// long it took.
type shutdownResult struct {
	err  error
	took time.Duration
}

// shutdownIn calls shutdown with context.Background() and records it.
func shutdownIn(t *testing.T, ch chan<- shutdownResult, shutdown func(context.Context) error) {
	began := time.Now()
	err := shutdown(context.Background())
	put(t, ch, shutdownResult{err, time.Since(began)})
}

// checkShutdownInCallback checks the result of a Shutdown from a callback,
// then that done is closed.
func checkShutdownInCallback(t *testing.T, res <-chan shutdownResult, done <-chan struct{}) {
	t.Helper()
	r := recv(t, res, "Shutdown called from the callback to return")
	if !errors.Is(r.err, ErrInCallback) {
		t.Errorf("Shutdown from a callback returned %v, want ErrInCallback", r.err)
	}
	if r.took > time.Second {
		t.Errorf("Shutdown from a callback took %v, want at once", r.took)
	}
	recv(t, done, "Done() after a Shutdown from a callback")
}

func TestServerShutdownFromOnClose(t *testing.T) {
	res := make(chan shutdownResult, 1)
	listening := make(chan struct{}, 1)
	var s *Server
	ready := make(chan struct{})
	s, err := NewServer(ServerOptions{
		Host: "127.0.0.1", TLS: testCerts(t).ServerOptions(),
		OnConnect: func() { put(t, listening, struct{}{}) },
		OnClose: func(bool) {
			if _, ok := awaitIn(t, ready, "the handle"); ok {
				shutdownIn(t, res, s.Shutdown)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	close(ready)
	recv(t, listening, "listening")
	if !s.Close() {
		t.Fatal("Close() returned false")
	}
	checkShutdownInCallback(t, res, s.Done())
	wantStatus(t, s.Status(), OFFLINE, "after the shutdown")
}

// From OnToken, with a client connected: the server closes (remoteClose; the
// client closes in its OnRemoteClose) and shuts down.
func TestServerShutdownFromOnToken(t *testing.T) {
	res := make(chan shutdownResult, 1)
	listening := make(chan struct{}, 1)
	var s *Server
	ready := make(chan struct{})
	s, err := NewServer(ServerOptions{
		Host: "127.0.0.1", TLS: testCerts(t).ServerOptions(),
		OnConnect: func() { put(t, listening, struct{}{}) },
		OnToken: func([]byte, *Connection) {
			if _, ok := awaitIn(t, ready, "the handle"); ok {
				shutdownIn(t, res, s.Shutdown)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	close(ready)
	recv(t, listening, "listening")
	connected := make(chan struct{}, 1)
	closed := make(chan bool, 1)
	cli, err := NewClient(ClientOptions{
		Host: "127.0.0.1", Port: serverPort(s), TLS: testCerts(t).ClientOptions(),
		OnConnect:     func() { put(t, connected, struct{}{}) },
		OnRemoteClose: func(c *Connection) { c.Close() },
		OnClose:       func(had bool) { put(t, closed, had) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer shutdownWithin(t, "client", cli.Shutdown)
	recv(t, connected, "connected")
	if !cli.Send([]byte("shut down, please")) {
		t.Fatal("Send returned false")
	}
	checkShutdownInCallback(t, res, s.Done())
	if had := recv(t, closed, "the client's close"); had {
		t.Error("the client closed with an error")
	}
}

func TestClientShutdownFromOnClose(t *testing.T) {
	listening := make(chan struct{}, 1)
	srv, err := NewServer(ServerOptions{
		Host: "127.0.0.1", TLS: testCerts(t).ServerOptions(),
		OnConnect: func() { put(t, listening, struct{}{}) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer shutdownWithin(t, "server", srv.Shutdown)
	recv(t, listening, "listening")

	res := make(chan shutdownResult, 1)
	connected := make(chan struct{}, 1)
	var c *Client
	ready := make(chan struct{})
	c, err = NewClient(ClientOptions{
		Host: "127.0.0.1", Port: serverPort(srv), TLS: testCerts(t).ClientOptions(),
		OnConnect: func() { put(t, connected, struct{}{}) },
		OnClose: func(bool) {
			if _, ok := awaitIn(t, ready, "the handle"); ok {
				shutdownIn(t, res, c.Shutdown)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	close(ready)
	recv(t, connected, "connected")
	if !c.Close() {
		t.Fatal("Close() returned false")
	}
	checkShutdownInCallback(t, res, c.Done())
	within(t, deadline, "the server to see the client go", func() bool { return len(srv.Connections()) == 0 })
}

// Shutdown from a goroutine that a callback started is not inside the
// callback: it waits, and returns nil once the shutdown is complete.
func TestServerShutdownFromGoroutineOfCallback(t *testing.T) {
	res := make(chan shutdownResult, 1)
	listening := make(chan struct{}, 1)
	var s *Server
	ready := make(chan struct{})
	s, err := NewServer(ServerOptions{
		Host: "127.0.0.1", TLS: testCerts(t).ServerOptions(),
		OnConnect: func() {
			if _, ok := awaitIn(t, ready, "the handle"); ok {
				go shutdownIn(t, res, s.Shutdown)
			}
			put(t, listening, struct{}{})
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	close(ready)
	recv(t, listening, "listening")
	r := recv(t, res, "Shutdown from the goroutine")
	if r.err != nil {
		t.Errorf("Shutdown from a goroutine started by a callback returned %v, want nil", r.err)
	}
	select {
	case <-s.Done():
	default:
		t.Error("Shutdown returned nil before Done() was closed")
	}
}

// inCallbackHere knows each of the emitter's callback runners by address:
// inside a callback it says yes, outside no.
func TestInCallbackHereFindsEveryRunner(t *testing.T) {
	if inCallbackHere() {
		t.Fatal("inCallbackHere outside any callback")
	}
	var got []bool
	note := func() { got = append(got, inCallbackHere()) }
	e := newEmitter(nil, discardLogger, nil, func(any, *Connection, error) { note() }, tokenCallbacks{
		one:   func([]byte, *Connection) { note() },
		batch: func([][]byte, *Connection) { note() },
	})
	_ = e.run(&Closed{}, nil, nil)
	_ = e.runToken(e.tokens.one, nil, nil)
	_ = e.runTokens(nil, nil)
	if len(got) != 3 || !got[0] || !got[1] || !got[2] {
		t.Errorf("inCallbackHere inside run, runToken, runTokens: %v, want all true", got)
	}
}
