package conformance

import (
	"crypto/tls"
	"errors"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
)

// TokenClient connects from construction on and emits connect on
// secureConnect with status ONLINE.
func TestClient_ConnectFiresWithStatusOnline(t *testing.T) {
	e := newEnv(t)
	s := e.startServer(nil)
	c := e.startClient(s.listening(), nil)

	c.connected() // status ONLINE at the event
	assert.Equal(t, actors.ONLINE, c.cli.Status())
	require.NotNil(t, c.cli.Connection())
	assert.False(t, c.cli.Connection().IsDead())
	c.roundTrip([]byte("hello"))
}

// TokenClient.close: true and CLOSED at once, then close(false) with OFFLINE;
// a second close returns false.
func TestClient_CloseReturnsTrueThenFalse(t *testing.T) {
	e := newEnv(t)
	// A peer that holds its side open until released: the close cannot
	// complete before, so the status in between is certain.
	port, release := e.lingeringPeer()
	c := e.startClient(port, nil)
	c.connected()

	require.True(t, c.cli.Close(), "first Close")
	assert.Equal(t, actors.CLOSED, c.cli.Status(), "status right after Close")
	assert.False(t, c.cli.Close(), "second Close while closing")
	assert.False(t, c.cli.Connect(0), "Connect while closing")
	release()

	ev := waitFor(t, c.closes, "client close event")
	assert.False(t, ev.hadError, "hadError")
	assert.Equal(t, actors.OFFLINE, ev.status, "status at the close event")
	assert.Equal(t, actors.OFFLINE, c.cli.Status())
	assert.False(t, c.cli.Close(), "Close when offline")
	assert.Nil(t, c.cli.Connection(), "no connection after close")
	expectNothing(t, c.errs, 50*time.Millisecond, "client error event")
}

// TokenClient.send returns false without a connection.
func TestClient_SendReturnsFalseWhenNotConnected(t *testing.T) {
	e := newEnv(t)
	// Never connected: nothing listens.
	c := e.startClient(freePort(t), nil)
	assert.False(t, c.cli.Send([]byte("x")), "Send while connecting")
	waitFor(t, c.errs, "client error event")
	waitFor(t, c.closes, "client close event")
	assert.False(t, c.cli.Send([]byte("x")), "Send while offline")

	// Connected, then closed.
	s := e.startServer(nil)
	c2 := e.startClient(s.listening(), nil)
	c2.connected()
	require.True(t, c2.cli.Send([]byte("x")), "Send while connected")
	waitFor(t, c2.tokens, "echo")
	require.True(t, c2.cli.Close())
	waitFor(t, c2.closes, "client close event")
	assert.False(t, c2.cli.Send([]byte("z")), "Send after close")
}

// TokenClient.close sets connection to null at once: send returns false as
// soon as close has returned, before the close completes.
func TestClient_SendReturnsFalseRightAfterClose(t *testing.T) {
	e := newEnv(t)
	s := e.startServer(nil)
	c := e.startClient(s.listening(), nil)
	c.connected()
	c.roundTrip([]byte("x"))

	require.True(t, c.cli.Close())
	sent := c.cli.Send([]byte("sent after Close returned"))
	assert.False(t, sent, "Send right after Close returned true (status %v)", c.cli.Status())
	waitFor(t, c.closes, "client close event")
	assert.False(t, c.cli.Send([]byte("z")), "Send after close")
}

// TokenClient.connect returns false while the status is CONNECTING or ONLINE.
func TestClient_ConnectReturnsFalseWhenConnected(t *testing.T) {
	e := newEnv(t)
	s := e.startServer(nil)
	c := e.startClient(s.listening(), nil)
	c.connected()

	assert.False(t, c.cli.Connect(0), "Connect while connected")
	assert.False(t, c.cli.Connect(time.Second), "Connect with delay while connected")
	expectNothing(t, c.connect, 100*time.Millisecond, "second connect event")
	c.roundTrip([]byte("still one connection"))
}

// After a close, connect(0) returns true and connect fires again with ONLINE.
func TestClient_ConnectAfterCloseReconnects(t *testing.T) {
	e := newEnv(t)
	s := e.startServer(nil)
	c := e.startClient(s.listening(), nil)
	c.connected()
	first := c.cli.Connection()
	c.closedCleanly()

	require.True(t, c.cli.Connect(0), "Connect after close")
	assert.False(t, c.cli.Connect(0), "Connect while connecting")
	c.connected() // ONLINE at the event
	assert.NotSame(t, first, c.cli.Connection(), "a new connection")
	c.roundTrip([]byte("again"))

	// And once more.
	c.closedCleanly()
	require.True(t, c.cli.Connect(0))
	c.connected()
	c.roundTrip([]byte("and again"))
}

// A refused connection gives error (status still CONNECTING) and then
// close(true) with OFFLINE.
func TestClient_ConnectionRefusedGivesErrorThenClose(t *testing.T) {
	e := newEnv(t)
	c := e.startClient(freePort(t), nil)

	ev := waitFor(t, c.errs, "client error event")
	assert.Equal(t, actors.CONNECTING, ev.status, "status during the error event")
	assert.True(t, errors.Is(ev.err, actors.ErrDial), "errors.Is(%v, actors.ErrDial)", ev.err)
	cl := waitFor(t, c.closes, "client close event")
	assert.True(t, cl.hadError, "hadError")
	assert.Equal(t, actors.OFFLINE, cl.status, "status at the close event")
	assert.False(t, c.cli.Close(), "Close when offline")

	// connect() resets hadError and tries again: the same pair of events.
	require.True(t, c.cli.Connect(0))
	ev = waitFor(t, c.errs, "second error event")
	assert.Equal(t, actors.CONNECTING, ev.status)
	cl = waitFor(t, c.closes, "second close event")
	assert.True(t, cl.hadError)
	assert.Equal(t, actors.OFFLINE, cl.status)
	expectNothing(t, c.connect, 50*time.Millisecond, "connect event")
}

// Connect(delay) waits at least delay before connecting.
func TestClient_ConnectDelayWaits(t *testing.T) {
	const delay = 300 * time.Millisecond
	e := newEnv(t)
	s := e.startServer(nil)
	c := e.startClient(s.listening(), nil)
	c.connected()
	c.closedCleanly()

	start := time.Now()
	require.True(t, c.cli.Connect(delay))
	assert.Equal(t, actors.CONNECTING, c.cli.Status(), "status while waiting to connect")
	assert.False(t, c.cli.Connect(0), "Connect while waiting to connect")
	c.connected()
	assert.GreaterOrEqual(t, time.Since(start), delay, "connect came before the delay")
	c.roundTrip([]byte("late"))
}

// Close while waiting to connect cancels the connect: close(false), and no
// connect event after the delay.
func TestClient_CloseCancelsDelayedConnect(t *testing.T) {
	const delay = 200 * time.Millisecond
	e := newEnv(t)
	s := e.startServer(nil)
	c := e.startClient(s.listening(), nil)
	c.connected()
	c.closedCleanly()

	require.True(t, c.cli.Connect(delay))
	require.True(t, c.cli.Close(), "Close while waiting to connect")
	cl := waitFor(t, c.closes, "client close event")
	assert.False(t, cl.hadError)
	assert.Equal(t, actors.OFFLINE, cl.status)
	expectNothing(t, c.connect, delay+200*time.Millisecond, "connect event after Close")
	assert.Equal(t, actors.OFFLINE, c.cli.Status())
}

// The same against a real server: close(false) with OFFLINE at the event.
func TestClient_CloseAgainstServerIsClean(t *testing.T) {
	e := newEnv(t)
	s := e.startServer(nil)
	c := e.startClient(s.listening(), nil)
	c.connected()
	sc := waitFor(t, s.conns, "server connection")

	require.True(t, c.cli.Close())
	ev := waitFor(t, c.closes, "client close event")
	assert.False(t, ev.hadError)
	assert.Equal(t, actors.OFFLINE, ev.status)
	cc := waitFor(t, s.connCloses, "server connection close")
	assert.Same(t, sc, cc.conn)
	assert.False(t, cc.hadError)
	assert.False(t, c.cli.Close())
}

// Close while the connect is in progress (the TLS handshake waits for a peer
// that never answers) stops it: close(false), no error and no connect.
func TestClient_CloseWhileConnecting(t *testing.T) {
	e := newEnv(t)
	l, err := net.Listen("tcp", "127.0.0.1:0") // accepts in the kernel only: no TLS
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	c := e.startClient(l.Addr().(*net.TCPAddr).Port, nil)

	assert.Equal(t, actors.CONNECTING, c.cli.Status())
	require.True(t, c.cli.Close(), "Close while connecting")
	// Stopping a dial takes no round trip: the close may be over already.
	assert.Contains(t, []actors.Status{actors.CLOSED, actors.OFFLINE}, c.cli.Status(), "status right after Close")
	assert.False(t, c.cli.Close(), "second Close")
	cl := waitFor(t, c.closes, "client close event")
	assert.False(t, cl.hadError, "hadError")
	assert.Equal(t, actors.OFFLINE, cl.status)
	expectNothing(t, c.errs, 50*time.Millisecond, "error event")
	expectNothing(t, c.connect, 0, "connect event")
	assert.False(t, c.cli.Close())
}

// What was sent before Close is delivered, in order, before the connection
// ends.
func TestClient_TokensSentBeforeCloseAreDelivered(t *testing.T) {
	e := newEnv(t)
	seen := make(chan []byte, bufSize)
	s := e.startServer(func(o *actors.ServerOptions) {
		o.OnToken = func(token []byte, _ *actors.Connection) { put(seen, token) } // no echo
	})
	c := e.startClient(s.listening(), nil)
	c.connected()
	sc := waitFor(t, s.conns, "server connection")

	const n = 200
	for i := 0; i < n; i++ {
		require.True(t, c.cli.Send([]byte(strconv.Itoa(i))))
	}
	require.True(t, c.cli.Close())
	cl := waitFor(t, c.closes, "client close event")
	assert.False(t, cl.hadError)
	cc := waitFor(t, s.connCloses, "server connection close")
	assert.Same(t, sc, cc.conn)
	assert.False(t, cc.hadError)
	// Tokens are delivered before the connection's close event.
	require.Len(t, seen, n, "tokens delivered before the close event")
	for i := 0; i < n; i++ {
		assert.Equal(t, []byte(strconv.Itoa(i)), <-seen)
	}
}

// A connection reset by the server (socket 'error', then 'close' in Node)
// gives error, then close(true) with OFFLINE.
func TestClient_ConnectionResetGivesErrorThenClose(t *testing.T) {
	e := newEnv(t)
	cfg, err := tlsio.ServerConfig(e.certs.ServerOptions())
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	reset := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		raw, err := ln.Accept()
		if err != nil {
			return
		}
		defer raw.Close()
		conn := tls.Server(raw, cfg)
		_ = conn.SetDeadline(time.Now().Add(wait))
		if conn.Handshake() != nil {
			return
		}
		select {
		case <-reset:
		case <-time.After(wait):
		}
		_ = raw.(*net.TCPConn).SetLinger(0) // close with RST
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
	})

	c := e.startClient(ln.Addr().(*net.TCPAddr).Port, nil)
	c.connected()
	close(reset)
	ev := waitFor(t, c.errs, "client error event")
	assert.True(t, errors.Is(ev.err, actors.ErrConnection), "errors.Is(%v, actors.ErrConnection)", ev.err)
	assert.Equal(t, actors.ONLINE, ev.status, "status during the error event")
	cl := waitFor(t, c.closes, "client close event")
	assert.True(t, cl.hadError, "hadError")
	assert.Equal(t, actors.OFFLINE, cl.status)
	assert.False(t, c.cli.Send([]byte("x")))
	assert.Nil(t, c.cli.Connection())
}

// When the server goes away (remoteClose honoured), the client is OFFLINE and
// connect(0) reaches the server once it listens again.
func TestClient_ReconnectsAfterServerRestart(t *testing.T) {
	e := newEnv(t)
	port := freePort(t)
	s := e.startServer(func(o *actors.ServerOptions) { o.Port = port })
	require.Equal(t, port, s.listening())
	c := e.startClient(port, func(o *actors.ClientOptions) {
		o.OnRemoteClose = func(conn *actors.Connection) { conn.Close() }
	})
	c.connected()

	require.True(t, s.srv.Close())
	cl := waitFor(t, c.closes, "client close event")
	assert.False(t, cl.hadError)
	assert.Equal(t, actors.OFFLINE, cl.status)
	waitFor(t, s.closes, "server close event")

	require.True(t, s.srv.Connect(0))
	require.Equal(t, port, s.listening())
	require.True(t, c.cli.Connect(0))
	c.connected()
	c.roundTrip([]byte("back"))
}

// heldClient starts a client whose first connect callback holds the client
// actor until release is called, so that the events that follow it queue up
// behind it. It returns once the callback holds, with the server's
// connection for the client. onClose, if set, runs in the client's close
// callback after the event was recorded.
func (e *env) heldClient(s *serverRig, onClose func(c *clientRig)) (c *clientRig, sc *actors.Connection, release func()) {
	t := e.t
	t.Helper()
	block := make(chan struct{})
	blocked := make(chan struct{}, 1)
	var once sync.Once
	release = func() { once.Do(func() { close(block) }) }
	t.Cleanup(release)
	first := true
	c = e.startClient(s.listening(), func(o *actors.ClientOptions) {
		recConnect, recClose := o.OnConnect, o.OnClose
		o.OnConnect = func() {
			if first {
				first = false
				put(blocked, struct{}{})
				select {
				case <-block:
				case <-time.After(wait):
				}
			}
			recConnect()
		}
		o.OnClose = func(hadError bool) {
			recClose(hadError)
			if onClose != nil {
				onClose(c)
			}
		}
	})
	waitFor(t, blocked, "client connect callback to hold")
	sc = waitFor(t, s.conns, "server connection")
	return c, sc, release
}

// closeWhileServerCloses makes the server close the connection of a held
// client, waits until that close is over on the server, then calls the
// client's Close (status still ONLINE: the client has not handled the close)
// and releases the client.
func closeWhileServerCloses(t *testing.T, s *serverRig, c *clientRig, sc *actors.Connection, release func()) {
	t.Helper()
	require.True(t, sc.Close())
	cc := waitFor(t, s.connCloses, "server connection close")
	assert.False(t, cc.hadError)
	// The client's connection actor reports its end to the client a few
	// hops after the server saw it, and nothing of that is observable while
	// the client actor is held: give those hops a moment, so that the close
	// is queued at the client before the Close below. (Were it not, the
	// test could only pass wrongly, never fail wrongly.)
	settle(100 * time.Millisecond)
	assert.Equal(t, actors.ONLINE, c.cli.Status(), "the client has not handled the close yet")
	require.True(t, c.cli.Close(), "Close while the close is on its way")
	release()
	waitFor(t, c.connect, "the held connect event") // its status is CLOSED by now
}

// countCloses counts the close events arriving within d.
func countCloses(c *clientRig, d time.Duration) (n int) {
	deadline := time.After(d)
	for {
		select {
		case <-c.closes:
			n++
		case <-deadline:
			return n
		}
	}
}

// Close called while the server is closing the connection, before the
// client has handled that close: one close event, as the original emits
// 'close' once per socket.
func TestClient_CloseRacingServerCloseGivesOneCloseEvent(t *testing.T) {
	e := newEnv(t)
	s := e.startServer(nil)
	c, sc, release := e.heldClient(s, nil)

	closeWhileServerCloses(t, s, c, sc, release)
	cl := waitFor(t, c.closes, "client close event")
	assert.False(t, cl.hadError)
	assert.Equal(t, actors.OFFLINE, cl.status)
	assert.Zero(t, countCloses(c, 200*time.Millisecond), "further close events")

	require.True(t, c.cli.Connect(0), "Connect after the close")
	c.connected()
	c.roundTrip([]byte("reconnected"))
}

// The same race, with the common reconnect pattern of calling Connect(0) from
// the close callback: the connect must happen.
func TestClient_ConnectFromCloseCallbackAfterRacingClose(t *testing.T) {
	e := newEnv(t)
	s := e.startServer(nil)
	reconnected := make(chan bool, 1)
	first := true
	c, sc, release := e.heldClient(s, func(c *clientRig) {
		if first {
			first = false
			put(reconnected, c.cli.Connect(0))
		}
	})

	closeWhileServerCloses(t, s, c, sc, release)
	cl := waitFor(t, c.closes, "client close event")
	assert.False(t, cl.hadError)
	require.True(t, waitFor(t, reconnected, "Connect from the close callback"), "Connect(0) in OnClose")
	select {
	case st := <-c.connect:
		assert.Equal(t, actors.ONLINE, st, "client status at its connect event")
	case <-time.After(wait):
		t.Fatalf("Connect(0) returned true in OnClose, but no connect event in %v (status now %v, %d more close events)",
			wait, c.cli.Status(), len(c.closes))
	}
	assert.Zero(t, len(c.closes), "close events after the one that called Connect")
	c.roundTrip([]byte("reconnected from OnClose"))
}

// Close called from the error callback of a failed connect (status still
// CONNECTING, so Close is true as in the original): one close event, with
// hadError true.
func TestClient_CloseInErrorCallbackGivesOneCloseEvent(t *testing.T) {
	e := newEnv(t)
	closed := make(chan bool, 1)
	var c *clientRig
	ready := make(chan struct{})
	c = e.startClient(freePort(t), func(o *actors.ClientOptions) {
		rec := o.OnError
		o.OnError = func(err error) {
			rec(err)
			<-ready
			put(closed, c.cli.Close())
		}
	})
	close(ready)

	ev := waitFor(t, c.errs, "client error event")
	assert.Equal(t, actors.CONNECTING, ev.status)
	assert.True(t, waitFor(t, closed, "Close in OnError"), "Close in OnError while CONNECTING")
	cl := waitFor(t, c.closes, "client close event")
	assert.True(t, cl.hadError, "hadError")
	assert.Equal(t, actors.OFFLINE, cl.status)
	assert.Zero(t, countCloses(c, 200*time.Millisecond), "further close events")
	assert.Equal(t, actors.OFFLINE, c.cli.Status())
}
