package conformance

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/require"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
)

// wait bounds every wait for an event.
const wait = 5 * time.Second

// unknownStatus is what a callback records when the handle never became
// available (it shows as "Status(-1)" in a failure).
const unknownStatus = actors.Status(-1)

// waitFor returns the next value of ch, failing the test after wait.
func waitFor[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(wait):
		t.Fatalf("timed out after %v waiting for %s", wait, what)
		panic("unreachable")
	}
}

// waitClosed waits until ch is closed.
func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(wait):
		t.Fatalf("timed out after %v waiting for %s", wait, what)
	}
}

// expectNothing checks that ch yields nothing for d (a bounded negative check).
func expectNothing[T any](t *testing.T, ch <-chan T, d time.Duration, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("unexpected %s: %+v", what, v)
	case <-time.After(d):
	}
}

// settle waits d for work that no event can show (see its one use); tests
// otherwise wait for events only.
func settle(d time.Duration) {
	<-time.After(d)
}

// put records v without ever blocking the actor that runs the callback.
func put[T any](ch chan T, v T) {
	select {
	case ch <- v:
	default:
	}
}

const bufSize = 4096

// Recorded events.
type (
	errAt struct {
		err    error
		status actors.Status
	}
	closeAt struct {
		hadError bool
		status   actors.Status
	}
	tokenAt struct {
		data []byte
		conn *actors.Connection
	}
	connErr struct {
		conn *actors.Connection
		err  error
	}
	connClose struct {
		conn     *actors.Connection
		hadError bool
	}
	remoteCloseAt struct {
		conn   *actors.Connection
		status actors.Status
	}
)

// env is one test's world: an actor system and a set of dev certificates.
type env struct {
	t     *testing.T
	sys   *actor.ActorSystem
	certs *tlsio.DevCerts
}

func newEnv(t *testing.T) *env {
	t.Helper()
	certs, err := tlsio.GenerateDevCerts()
	require.NoError(t, err)
	sys := actors.NewQuietSystem()
	t.Cleanup(sys.Shutdown) // registered first: runs last
	return &env{t: t, sys: sys, certs: certs}
}

// ---- server ----

type serverRig struct {
	t     *testing.T
	srv   *actors.Server
	ready chan struct{}

	connect    chan actors.Status
	errs       chan errAt
	closes     chan closeAt
	tokens     chan tokenAt
	conns      chan *actors.Connection
	connErrs   chan connErr
	connCloses chan connClose
}

func (r *serverRig) status() actors.Status {
	select {
	case <-r.ready:
		return r.srv.Status()
	case <-time.After(wait):
		return unknownStatus
	}
}

// startServer starts a server on 127.0.0.1 port 0 with mutual TLS, recording
// every event; it echoes each token on its connection. mod may
// change the options (and replace callbacks).
func (e *env) startServer(mod func(*actors.ServerOptions)) *serverRig {
	t := e.t
	t.Helper()
	r := &serverRig{
		t: t, ready: make(chan struct{}),
		connect:    make(chan actors.Status, bufSize),
		errs:       make(chan errAt, bufSize),
		closes:     make(chan closeAt, bufSize),
		tokens:     make(chan tokenAt, bufSize),
		conns:      make(chan *actors.Connection, bufSize),
		connErrs:   make(chan connErr, bufSize),
		connCloses: make(chan connClose, bufSize),
	}
	opts := actors.ServerOptions{
		Host:      "127.0.0.1",
		Port:      0,
		TLS:       e.certs.ServerOptions(),
		Runtime:   actors.Runtime{System: e.sys},
		OnConnect: func() { put(r.connect, r.status()) },
		OnError:   func(err error) { put(r.errs, errAt{err, r.status()}) },
		OnClose:   func(hadError bool) { put(r.closes, closeAt{hadError, r.status()}) },
		OnToken: func(token []byte, c *actors.Connection) {
			put(r.tokens, tokenAt{token, c})
			c.Send(token) // echo

		},
		OnConnection:      func(c *actors.Connection) { put(r.conns, c) },
		OnConnectionError: func(c *actors.Connection, err error) { put(r.connErrs, connErr{c, err}) },
		OnConnectionClose: func(c *actors.Connection, hadError bool) { put(r.connCloses, connClose{c, hadError}) },
	}
	if mod != nil {
		mod(&opts)
	}
	srv, err := actors.NewServer(opts)
	require.NoError(t, err)
	r.srv = srv
	close(r.ready)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("server Shutdown: %v", err)
		}
	})
	return r
}

// listening waits for the connect event, checks the status at the event was
// ONLINE, and returns the bound port.
func (r *serverRig) listening() int {
	r.t.Helper()
	st := waitFor(r.t, r.connect, "server connect event")
	require.Equal(r.t, actors.ONLINE, st, "server status at its connect event")
	return r.port()
}

func (r *serverRig) port() int {
	r.t.Helper()
	addr, ok := r.srv.Addr().(*net.TCPAddr)
	require.True(r.t, ok, "server Addr() = %v", r.srv.Addr())
	return addr.Port
}

func (r *serverRig) addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port()))
}

// ---- client ----

type clientRig struct {
	t     *testing.T
	cli   *actors.Client
	ready chan struct{}

	connect      chan actors.Status
	tokens       chan tokenAt
	remoteCloses chan remoteCloseAt
	errs         chan errAt
	closes       chan closeAt
}

func (r *clientRig) status() actors.Status {
	select {
	case <-r.ready:
		return r.cli.Status()
	case <-time.After(wait):
		return unknownStatus
	}
}

// startClient starts a client of 127.0.0.1:port with the client certificate,
// recording every event.
func (e *env) startClient(port int, mod func(*actors.ClientOptions)) *clientRig {
	t := e.t
	t.Helper()
	r := &clientRig{
		t: t, ready: make(chan struct{}),
		connect:      make(chan actors.Status, bufSize),
		tokens:       make(chan tokenAt, bufSize),
		remoteCloses: make(chan remoteCloseAt, bufSize),
		errs:         make(chan errAt, bufSize),
		closes:       make(chan closeAt, bufSize),
	}
	opts := actors.ClientOptions{
		Host:          "127.0.0.1",
		Port:          port,
		TLS:           e.certs.ClientOptions(),
		Runtime:       actors.Runtime{System: e.sys},
		OnConnect:     func() { put(r.connect, r.status()) },
		OnToken:       func(token []byte, c *actors.Connection) { put(r.tokens, tokenAt{token, c}) },
		OnRemoteClose: func(c *actors.Connection) { put(r.remoteCloses, remoteCloseAt{c, r.status()}) },
		OnError:       func(err error) { put(r.errs, errAt{err, r.status()}) },
		OnClose:       func(hadError bool) { put(r.closes, closeAt{hadError, r.status()}) },
	}
	if mod != nil {
		mod(&opts)
	}
	cli, err := actors.NewClient(opts)
	require.NoError(t, err)
	r.cli = cli
	close(r.ready)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := cli.Shutdown(ctx); err != nil {
			t.Errorf("client Shutdown: %v", err)
		}
	})
	return r
}

// connected waits for the connect event and checks the status at the event.
func (r *clientRig) connected() {
	r.t.Helper()
	st := waitFor(r.t, r.connect, "client connect event")
	require.Equal(r.t, actors.ONLINE, st, "client status at its connect event")
}

// roundTrip sends token and waits for the echo.
func (r *clientRig) roundTrip(token []byte) {
	r.t.Helper()
	require.True(r.t, r.cli.Send(token), "client Send")
	got := waitFor(r.t, r.tokens, "echo of "+strconv.Quote(short(token)))
	require.Equal(r.t, token, got.data)
}

// closedCleanly closes the client and waits for its clean close event.
func (r *clientRig) closedCleanly() {
	r.t.Helper()
	require.True(r.t, r.cli.Close(), "client Close")
	ev := waitFor(r.t, r.closes, "client close event")
	require.False(r.t, ev.hadError, "client close hadError")
}

func short(b []byte) string {
	if len(b) > 32 {
		return string(b[:32]) + "..."
	}
	return string(b)
}

// ---- bare connection over net.Pipe ----

type pipeRig struct {
	t            *testing.T
	conn         *actors.Connection
	raw          net.Conn
	tokens       chan []byte
	remoteCloses chan struct{}
	errs         chan error
	closes       chan bool
	closed       chan struct{} // closed at the first close event
	rawIn        chan []byte
	rawDone      chan struct{}
	rawBuf       []byte
}

// newPipe wraps one end of a net.Pipe in a Connection and reads the raw
// other end in a goroutine. The close timeout is short so that a clean close
// ends on its own (net.Pipe has no half-close).
func (e *env) newPipe(mod func(*actors.ConnectionOptions)) *pipeRig {
	t := e.t
	t.Helper()
	ours, raw := net.Pipe()
	require.NoError(t, raw.SetDeadline(time.Now().Add(30*time.Second)))
	r := &pipeRig{
		t: t, raw: raw,
		tokens:       make(chan []byte, bufSize),
		remoteCloses: make(chan struct{}, bufSize),
		errs:         make(chan error, bufSize),
		closes:       make(chan bool, bufSize),
		closed:       make(chan struct{}),
		rawIn:        make(chan []byte, bufSize),
		rawDone:      make(chan struct{}),
	}
	var closedOnce bool
	opts := actors.ConnectionOptions{
		Limits:        actors.Limits{CloseTimeout: 200 * time.Millisecond},
		Runtime:       actors.Runtime{System: e.sys},
		OnToken:       func(token []byte, _ *actors.Connection) { put(r.tokens, token) },
		OnRemoteClose: func(*actors.Connection) { put(r.remoteCloses, struct{}{}) },
		OnError:       func(err error) { put(r.errs, err) },
		OnClose: func(hadError bool) {
			put(r.closes, hadError)
			if !closedOnce { // callbacks never run concurrently
				closedOnce = true
				close(r.closed)
			}
		},
	}
	if mod != nil {
		mod(&opts)
	}
	go func() {
		defer close(r.rawDone)
		for {
			buf := make([]byte, 64<<10)
			n, err := raw.Read(buf)
			if n > 0 {
				r.rawIn <- buf[:n]
			}
			if err != nil {
				return
			}
		}
	}()
	conn, err := actors.NewConnection(ours, opts)
	if err != nil {
		_ = raw.Close()
		_ = ours.Close()
		<-r.rawDone
		require.NoError(t, err)
	}
	r.conn = conn
	t.Cleanup(func() {
		_ = raw.Close()
		select {
		case <-r.closed:
		case <-time.After(wait):
			t.Errorf("connection never emitted close")
		}
		select {
		case <-r.rawDone:
		case <-time.After(wait):
			t.Errorf("raw reader did not end")
		}
	})
	return r
}

// write writes b on the raw end in one Write.
func (r *pipeRig) write(b []byte) {
	r.t.Helper()
	n, err := r.raw.Write(b)
	require.NoError(r.t, err)
	require.Equal(r.t, len(b), n)
}

// expectRaw waits until the raw end has read len(want) more bytes and checks
// they are want.
func (r *pipeRig) expectRaw(want []byte) {
	r.t.Helper()
	deadline := time.After(wait)
	for len(r.rawBuf) < len(want) {
		select {
		case b := <-r.rawIn:
			r.rawBuf = append(r.rawBuf, b...)
		case <-deadline:
			r.t.Fatalf("raw end read %q, want %q", r.rawBuf, want)
		}
	}
	got := r.rawBuf[:len(want)]
	r.rawBuf = r.rawBuf[len(want):]
	require.Equal(r.t, want, got, "bytes on the wire")
}

// ---- raw TLS peers ----

// rawTLS dials the server with a plain crypto/tls client using cfg. The
// connection is closed at cleanup.
func rawTLS(t *testing.T, addr string, cfg *tls.Config) *tls.Conn {
	t.Helper()
	d := &net.Dialer{Timeout: wait}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	require.NoError(t, err)
	require.NoError(t, c.SetDeadline(time.Now().Add(wait)))
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// clientTLSConfig is the TLS config of a well-behaved client (certificate
// and CA).
func (e *env) clientTLSConfig() *tls.Config {
	e.t.Helper()
	cfg, err := tlsio.ClientConfig(e.certs.ClientOptions())
	require.NoError(e.t, err)
	return cfg
}

// errTimeout is the error of a read that hit its deadline.
var errTimeout = os.ErrDeadlineExceeded

// readUntilEnd reads c until an error (EOF, reset, alert) and returns what it
// read and the error.
func readUntilEnd(c net.Conn) ([]byte, error) {
	var out bytes.Buffer
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			return out.Bytes(), err
		}
	}
}

// readN reads exactly n bytes from c.
func readN(t *testing.T, c net.Conn, n int) []byte {
	t.Helper()
	out := make([]byte, 0, n)
	buf := make([]byte, 64<<10)
	for len(out) < n {
		k, err := c.Read(buf[:min(len(buf), n-len(out))])
		out = append(out, buf[:k]...)
		require.NoError(t, err, "read %d of %d bytes", len(out), n)
	}
	return out
}

// freePort returns a loopback port where nothing listens (it did a moment ago).
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	return port
}

// ---- wire vectors ----

type vector struct {
	Name   string `json:"name"`
	InHex  string `json:"in_hex"`
	WireHx string `json:"wire_hex"`
	in     []byte
	wire   []byte
}

type vectorFile struct {
	Escape   []vector `json:"escape"`
	Rejected []vector `json:"rejected"`
}

func loadVectors(t *testing.T) vectorFile {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "wire", "testdata", "wire-vectors.json"))
	require.NoError(t, err)
	var f vectorFile
	require.NoError(t, json.Unmarshal(raw, &f))
	require.NotEmpty(t, f.Escape)
	for _, list := range [][]vector{f.Escape, f.Rejected} {
		for i := range list {
			v := &list[i]
			v.in, err = hex.DecodeString(v.InHex)
			require.NoError(t, err, v.Name)
			v.wire, err = hex.DecodeString(v.WireHx)
			require.NoError(t, err, v.Name)
		}
	}
	return f
}

// lingeringPeer is a plain TLS server for one client: it reads until the
// client's side is closed, then keeps its own side open until release is
// called, so that the client's close cannot complete before that.
func (e *env) lingeringPeer() (port int, release func()) {
	t := e.t
	t.Helper()
	cfg, err := tlsio.ServerConfig(e.certs.ServerOptions())
	require.NoError(t, err)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	require.NoError(t, err)
	released := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(wait))
		_, _ = readUntilEnd(conn)
		select {
		case <-released:
		case <-time.After(wait):
		}
	}()
	var once sync.Once
	release = func() { once.Do(func() { close(released) }) }
	t.Cleanup(func() {
		release()
		_ = ln.Close()
		<-done
	})
	return ln.Addr().(*net.TCPAddr).Port, release
}
