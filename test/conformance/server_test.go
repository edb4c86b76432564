package conformance

import (
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tokenserver/tokenserver/actors"
)

// TokenServer listens from construction on and emits connect on listening,
// with status ONLINE.
func TestServer_ConnectFiresWithStatusOnline(t *testing.T) {
	e := newEnv(t)
	s := e.startServer(nil)

	port := s.listening() // status ONLINE at the event
	assert.NotZero(t, port)
	assert.Equal(t, actors.ONLINE, s.srv.Status())
	assert.Empty(t, s.srv.Connections())
	c := e.startClient(port, nil)
	c.connected()
}

// TokenServer.close: true (status CLOSED at once), then close(false) with
// OFFLINE; a second close returns false.
func TestServer_CloseReturnsTrueThenFalse(t *testing.T) {
	e := newEnv(t)
	s := e.startServer(nil)
	port := s.listening()
	// A connected client that closes only when the test says so: the
	// server's close cannot complete before, so CLOSED is certain meanwhile.
	c := e.startClient(port, nil)
	c.connected()
	waitFor(t, s.conns, "server connection")

	require.True(t, s.srv.Close(), "first Close")
	assert.Equal(t, actors.CLOSED, s.srv.Status(), "status right after Close")
	assert.False(t, s.srv.Close(), "second Close while closing")
	assert.False(t, s.srv.Connect(0), "Connect while closing")
	waitFor(t, c.remoteCloses, "client remoteClose event")
	assert.Equal(t, actors.CLOSED, s.srv.Status(), "status while waiting for the client")
	require.True(t, c.cli.Close())
	ev := waitFor(t, s.closes, "server close event")
	assert.False(t, ev.hadError, "a clean close has hadError false")
	assert.Equal(t, actors.OFFLINE, ev.status, "status at the close event")
	assert.False(t, s.srv.Close(), "Close when offline")
	assert.Nil(t, s.srv.Addr(), "no address while not listening")
	expectNothing(t, s.errs, 50*time.Millisecond, "server error event")

	cl := waitFor(t, c.closes, "client close event")
	assert.False(t, cl.hadError)

	// The port is free again: nothing accepts there.
	conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
	if err == nil {
		_ = conn.Close()
	}
	assert.Error(t, err, "the closed server still accepts connections")
}

// TokenServer.connect returns false while CONNECTING or ONLINE.
func TestServer_ConnectReturnsFalseWhenListening(t *testing.T) {
	e := newEnv(t)
	s := e.startServer(nil)
	s.listening()

	assert.False(t, s.srv.Connect(0), "Connect while listening")
	assert.False(t, s.srv.Connect(time.Second), "Connect with delay while listening")
	expectNothing(t, s.connect, 100*time.Millisecond, "second connect event")
	assert.Equal(t, actors.ONLINE, s.srv.Status())
}

// After a close, connect(0) returns true and connect fires again.
func TestServer_ConnectAfterCloseListensAgain(t *testing.T) {
	e := newEnv(t)
	s := e.startServer(nil)
	s.listening()
	require.True(t, s.srv.Close())
	ev := waitFor(t, s.closes, "server close event")
	require.False(t, ev.hadError)

	require.True(t, s.srv.Connect(0), "Connect after close")
	assert.False(t, s.srv.Connect(0), "Connect while connecting or listening")
	port := s.listening() // ONLINE at the event

	c := e.startClient(port, nil)
	c.connected()
	c.roundTrip([]byte("served again"))
}

// Connect(delay) waits at least delay before listening again.
func TestServer_ConnectDelayWaits(t *testing.T) {
	const delay = 300 * time.Millisecond
	e := newEnv(t)
	s := e.startServer(nil)
	s.listening()
	require.True(t, s.srv.Close())
	waitFor(t, s.closes, "server close event")

	start := time.Now()
	require.True(t, s.srv.Connect(delay))
	assert.Equal(t, actors.CONNECTING, s.srv.Status(), "status while waiting to listen")
	s.listening()
	assert.GreaterOrEqual(t, time.Since(start), delay, "listened before the delay")
}

// A port in use gives error (status CONNECTING during it, ErrListen), then
// close(true) with OFFLINE; the server can be told to retry.
func TestServer_PortInUseGivesErrorThenClose(t *testing.T) {
	e := newEnv(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port

	s := e.startServer(func(o *actors.ServerOptions) { o.Port = port })
	ev := waitFor(t, s.errs, "server error event")
	assert.Equal(t, actors.CONNECTING, ev.status, "status during the error event")
	assert.True(t, errors.Is(ev.err, actors.ErrListen), "errors.Is(%v, actors.ErrListen)", ev.err)
	cl := waitFor(t, s.closes, "server close event")
	assert.True(t, cl.hadError, "hadError")
	assert.Equal(t, actors.OFFLINE, cl.status, "status at the close event")
	assert.Equal(t, actors.OFFLINE, s.srv.Status())
	assert.False(t, s.srv.Close(), "Close when offline")
	expectNothing(t, s.connect, 50*time.Millisecond, "connect event")

	// Free the port and retry: it listens there, and a clean close follows.
	require.NoError(t, l.Close())
	require.True(t, s.srv.Connect(0), "Connect after the failed listen")
	assert.Equal(t, port, s.listening())
	c := e.startClient(port, nil)
	c.connected()
	c.roundTrip([]byte("retried"))
	c.closedCleanly()
	require.True(t, s.srv.Close())
	cl = waitFor(t, s.closes, "server close event after retry")
	assert.False(t, cl.hadError, "connect() resets hadError")
}

// A clean close with connected clients: the client honours remoteClose, the
// server's close gives hadError false.
func TestServer_CleanCloseHasNoError(t *testing.T) {
	e := newEnv(t)
	s := e.startServer(nil)
	port := s.listening()
	c := e.startClient(port, func(o *actors.ClientOptions) {
		o.OnRemoteClose = func(conn *actors.Connection) { conn.Close() }
	})
	c.connected()
	waitFor(t, s.conns, "server connection")

	require.True(t, s.srv.Close())
	ev := waitFor(t, s.closes, "server close event")
	assert.False(t, ev.hadError)
	assert.Equal(t, actors.OFFLINE, ev.status)
	cc := waitFor(t, s.connCloses, "server connection close")
	assert.False(t, cc.hadError)
	expectNothing(t, s.connErrs, 50*time.Millisecond, "connection error event")
	expectNothing(t, s.errs, 0, "server error event")
}

// Without connections the close completes at once; Close is still true once,
// then false.
func TestServer_CloseWithoutConnections(t *testing.T) {
	e := newEnv(t)
	s := e.startServer(nil)
	s.listening()

	require.True(t, s.srv.Close(), "first Close")
	st := s.srv.Status()
	assert.Contains(t, []actors.Status{actors.CLOSED, actors.OFFLINE}, st, "status right after Close")
	assert.False(t, s.srv.Close(), "second Close")
	ev := waitFor(t, s.closes, "server close event")
	assert.False(t, ev.hadError)
	assert.Equal(t, actors.OFFLINE, ev.status)
	assert.False(t, s.srv.Close(), "Close when offline")
}

// Close while waiting to listen again cancels the listen: close(false), and
// no connect event after the delay.
func TestServer_CloseCancelsDelayedConnect(t *testing.T) {
	const delay = 200 * time.Millisecond
	e := newEnv(t)
	s := e.startServer(nil)
	s.listening()
	require.True(t, s.srv.Close())
	waitFor(t, s.closes, "server close event")

	require.True(t, s.srv.Connect(delay))
	require.True(t, s.srv.Close(), "Close while waiting to listen")
	ev := waitFor(t, s.closes, "server close event")
	assert.False(t, ev.hadError)
	assert.Equal(t, actors.OFFLINE, ev.status)
	expectNothing(t, s.connect, delay+200*time.Millisecond, "connect event after Close")
	assert.Equal(t, actors.OFFLINE, s.srv.Status())
	assert.Nil(t, s.srv.Addr())
}

// Close called from the error callback of a failed listen (status still
// CONNECTING, so Close is true): one close event, with hadError true.
func TestServer_CloseInErrorCallbackGivesOneCloseEvent(t *testing.T) {
	e := newEnv(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	closed := make(chan bool, 1)
	var s *serverRig
	ready := make(chan struct{})
	s = e.startServer(func(o *actors.ServerOptions) {
		o.Port = l.Addr().(*net.TCPAddr).Port
		rec := o.OnError
		o.OnError = func(err error) {
			rec(err)
			<-ready
			put(closed, s.srv.Close())
		}
	})
	close(ready)

	ev := waitFor(t, s.errs, "server error event")
	assert.Equal(t, actors.CONNECTING, ev.status)
	assert.True(t, waitFor(t, closed, "Close in OnError"), "Close in OnError while CONNECTING")
	cl := waitFor(t, s.closes, "server close event")
	assert.True(t, cl.hadError, "hadError")
	assert.Equal(t, actors.OFFLINE, cl.status)
	select {
	case extra := <-s.closes:
		t.Errorf("a second close event: %+v", extra)
	case <-time.After(200 * time.Millisecond):
	}
	assert.Equal(t, actors.OFFLINE, s.srv.Status())
}
