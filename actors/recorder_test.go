package actors

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// event is one event of a server or client, as its callback saw it.
type event struct {
	kind    string // connect, error, close, retry, gaveup, dropped, conn, connError, connClose, remoteClose
	status  Status // the handle's Status() inside the callback
	had     bool   // close: hadError
	err     error  // error, connError, dropped: the error or reason
	attempt int    // retry: the attempt; gaveup: the attempts
	delay   time.Duration
	conn    *Connection
	at      time.Time
}

func (e event) String() string {
	s := fmt.Sprintf("%s(status %v", e.kind, e.status)
	switch e.kind {
	case "close", "connClose":
		s += fmt.Sprintf(", hadError %v", e.had)
	case "error", "connError", "dropped":
		s += fmt.Sprintf(", %v", e.err)
	case "retry", "gaveup":
		s += fmt.Sprintf(", attempt %d", e.attempt)
	}
	return s + ")"
}

// recorder records the events of one server or client, with the status the
// handle reported inside each callback. Callbacks wait (bounded) until the
// handle exists, then record without blocking.
type recorder struct {
	t      *testing.T
	ready  chan struct{}
	status func() Status
	events chan event
}

func newRecorder(t *testing.T) *recorder {
	return &recorder{t: t, ready: make(chan struct{}), events: make(chan event, 1024)}
}

// setHandle gives the recorder the handle's Status, once it exists.
func (r *recorder) setHandle(status func() Status) {
	r.status = status
	close(r.ready)
}

func (r *recorder) rec(e event) {
	select {
	case <-r.ready:
		e.status = r.status()
	case <-time.After(deadline):
		r.t.Errorf("%s event: the handle never became available", e.kind)
		e.status = Status(-1)
	}
	e.at = time.Now()
	put(r.t, r.events, e)
}

// serverOptions returns options for a server on 127.0.0.1 (port 0) whose
// every event goes to r.
func (r *recorder) serverOptions() ServerOptions {
	return ServerOptions{
		Host: "127.0.0.1", TLS: testCerts(r.t).ServerOptions(),
		OnConnect:         func() { r.rec(event{kind: "connect"}) },
		OnError:           func(err error) { r.rec(event{kind: "error", err: err}) },
		OnClose:           func(had bool) { r.rec(event{kind: "close", had: had}) },
		OnListenRetry:     func(n int, d time.Duration, _ string) { r.rec(event{kind: "retry", attempt: n, delay: d}) },
		OnGaveUp:          func(n int, _ string) { r.rec(event{kind: "gaveup", attempt: n}) },
		OnConnection:      func(c *Connection) { r.rec(event{kind: "conn", conn: c}) },
		OnConnectionError: func(c *Connection, err error) { r.rec(event{kind: "connError", conn: c, err: err}) },
		OnConnectionClose: func(c *Connection, had bool) { r.rec(event{kind: "connClose", conn: c, had: had}) },
		OnDropped:         func(c *Connection, _ [][]byte, err error) { r.rec(event{kind: "dropped", conn: c, err: err}) },
	}
}

// clientOptions returns options for a client of 127.0.0.1:port whose every
// event goes to r.
func (r *recorder) clientOptions(port int) ClientOptions {
	return ClientOptions{
		Host: "127.0.0.1", Port: port, TLS: testCerts(r.t).ClientOptions(),
		OnConnect:      func() { r.rec(event{kind: "connect"}) },
		OnError:        func(err error) { r.rec(event{kind: "error", err: err}) },
		OnClose:        func(had bool) { r.rec(event{kind: "close", had: had}) },
		OnReconnecting: func(n int, d time.Duration, _ string) { r.rec(event{kind: "retry", attempt: n, delay: d}) },
		OnGaveUp:       func(n int, _ string) { r.rec(event{kind: "gaveup", attempt: n}) },
		OnRemoteClose:  func(c *Connection) { r.rec(event{kind: "remoteClose", conn: c}) },
		OnDropped:      func(_ [][]byte, err error) { r.rec(event{kind: "dropped", err: err}) },
	}
}

// startServer starts a server with r's options, changed by mod.
func (r *recorder) startServer(mod func(*ServerOptions)) *Server {
	r.t.Helper()
	o := r.serverOptions()
	if mod != nil {
		mod(&o)
	}
	s, err := NewServer(o)
	if err != nil {
		r.t.Fatal(err)
	}
	r.setHandle(s.Status)
	r.t.Cleanup(func() { shutdownWithin(r.t, "server", s.Shutdown) })
	return s
}

// startClient starts a client of port with r's options, changed by mod.
func (r *recorder) startClient(port int, mod func(*ClientOptions)) *Client {
	r.t.Helper()
	o := r.clientOptions(port)
	if mod != nil {
		mod(&o)
	}
	c, err := NewClient(o)
	if err != nil {
		r.t.Fatal(err)
	}
	r.setHandle(c.Status)
	r.t.Cleanup(func() { shutdownWithin(r.t, "client", c.Shutdown) })
	return c
}

// next returns the next event, which must be of kind and seen with status
// (any status when status < 0).
func (r *recorder) next(kind string, status Status) event {
	r.t.Helper()
	e := recv(r.t, r.events, kind+" event")
	if e.kind != kind {
		r.t.Fatalf("event %v, want %s", e, kind)
	}
	if status >= 0 && e.status != status {
		r.t.Fatalf("event %v: status %v inside the callback, want %v", e, e.status, status)
	}
	return e
}

// nextError returns the next event, which must be an error matching target.
func (r *recorder) nextError(target error, status Status) event {
	r.t.Helper()
	e := r.next("error", status)
	if !errors.Is(e.err, target) {
		r.t.Fatalf("error %v, want %v", e.err, target)
	}
	return e
}

// nextClose returns the next event, which must be close(had) seen OFFLINE.
func (r *recorder) nextClose(had bool) event {
	r.t.Helper()
	e := r.next("close", OFFLINE)
	if e.had != had {
		r.t.Fatalf("close(hadError %v), want hadError %v", e.had, had)
	}
	return e
}

// quiet checks that no event comes for d.
func (r *recorder) quiet(d time.Duration) {
	r.t.Helper()
	none(r.t, r.events, d, "event")
}

// wantStatus checks the handle's status now.
func wantStatus(t *testing.T, got, want Status, when string) {
	t.Helper()
	if got != want {
		t.Fatalf("Status() %s = %v, want %v", when, got, want)
	}
}

// tlsPeer is a plain crypto/tls server (no actors) on 127.0.0.1 for client
// tests: it hands each accepted connection, once its handshake is done, to
// handle (idx counts from 0) in a goroutine of its own, and closes it when
// handle returns. The test's cleanup closes everything and waits.
type tlsPeer struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
	n     int
}

func startTLSPeer(t *testing.T, handle func(idx int, tc *tls.Conn, raw *net.TCPConn)) *tlsPeer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tlsPeer{ln: ln}
	cfg := serverTLS(t)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			idx := p.n
			p.n++
			p.conns = append(p.conns, raw)
			p.mu.Unlock()
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				defer raw.Close()
				_ = raw.SetDeadline(time.Now().Add(2 * deadline))
				tc := tls.Server(raw, cfg)
				if err := tc.Handshake(); err != nil {
					return // the client went away
				}
				handle(idx, tc, raw.(*net.TCPConn))
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		done := make(chan struct{})
		go func() { p.wg.Wait(); close(done) }()
		recv(t, done, "the TLS peer's goroutines")
	})
	return p
}

func (p *tlsPeer) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// holdOpen is a tlsPeer handler that reads (and discards) until the client
// closes.
func holdOpen(_ int, tc *tls.Conn, _ *net.TCPConn) { _, _ = io.Copy(io.Discard, tc) }

// reset is a tlsPeer handler that resets the connection at once.
func reset(_ int, _ *tls.Conn, raw *net.TCPConn) { _ = raw.SetLinger(0) }

// isErr is errors.Is, short for the status tests.
func isErr(err, target error) bool { return errors.Is(err, target) }
