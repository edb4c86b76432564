package conformance

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/wire"
)

// Connection.parse: a token is emitted as soon as its frame is received.
func TestConnection_EmitsTokenWhenReceived(t *testing.T) {
	e := newEnv(t)
	p := e.newPipe(nil)

	p.write([]byte("hello\n"))
	require.Equal(t, []byte("hello"), waitFor(t, p.tokens, "token"))

	// A frame split over two writes is one token, emitted when complete.
	p.write([]byte("wor"))
	p.write([]byte("ld\n"))
	require.Equal(t, []byte("world"), waitFor(t, p.tokens, "split token"))
	assert.False(t, p.conn.IsDead())
}

// Connection.parse loops over the buffer: several tokens in one chunk come
// out in order.
func TestConnection_SeveralTokensInOneChunkInOrder(t *testing.T) {
	e := newEnv(t)
	p := e.newPipe(nil)

	p.write([]byte("a\nb\nc\n")) // one write: one chunk
	for _, want := range []string{"a", "b", "c"} {
		require.Equal(t, []byte(want), waitFor(t, p.tokens, "token "+want))
	}
	// An escaped token and the empty token in the same chunk.
	p.write([]byte("x\\ny\n\nz\\\\\n"))
	for _, want := range []string{"x\ny", "", "z\\"} {
		require.Equal(t, []byte(want), waitFor(t, p.tokens, "token "+want))
	}
}

// Connection.send escapes: a token with newlines and backslashes goes out as
// one frame.
func TestConnection_SendDeliversTokenWithNewlines(t *testing.T) {
	e := newEnv(t)
	p := e.newPipe(nil)

	require.True(t, p.conn.Send([]byte("line one\nline two\\end\n")))
	p.expectRaw([]byte("line one\\nline two\\\\end\\n\n"))
	require.True(t, p.conn.Send(nil)) // the empty token
	p.expectRaw([]byte("\n"))
}

func TestConnection_SendReturnsFalseAfterClose(t *testing.T) {
	e := newEnv(t)
	p := e.newPipe(nil)

	require.True(t, p.conn.Send([]byte("before")))
	require.True(t, p.conn.Close())
	assert.False(t, p.conn.Send([]byte("after")), "Send after Close")
	p.expectRaw([]byte("before\n")) // what was sent before Close is written
	assert.False(t, waitFor(t, p.closes, "close event"), "hadError")
}

func TestConnection_IsDeadFalseThenTrueAfterClose(t *testing.T) {
	e := newEnv(t)
	p := e.newPipe(nil)

	assert.False(t, p.conn.IsDead(), "IsDead of a new connection")
	require.True(t, p.conn.Close())
	assert.True(t, p.conn.IsDead(), "IsDead right after Close")
	assert.False(t, waitFor(t, p.closes, "close event"), "hadError")
	assert.True(t, p.conn.IsDead(), "IsDead after the close event")
}

func TestConnection_CloseReturnsTrueThenFalse(t *testing.T) {
	e := newEnv(t)
	p := e.newPipe(nil)

	assert.True(t, p.conn.Close(), "first Close")
	assert.False(t, p.conn.Close(), "second Close")
	assert.False(t, waitFor(t, p.closes, "close event"), "hadError")
	assert.False(t, p.conn.Close(), "Close after the close event")
	// The connection closed its end of the pipe: the raw reader ended.
	waitClosed(t, p.rawDone, "raw end to see the close")
	expectNothing(t, p.closes, 100*time.Millisecond, "second close event")
}

// Connection.remoteClose writes the control frame "\\\n".
func TestConnection_RemoteCloseWritesControlFrame(t *testing.T) {
	e := newEnv(t)
	p := e.newPipe(nil)

	require.True(t, p.conn.RemoteClose())
	p.expectRaw([]byte("\\\n"))
	assert.False(t, p.conn.IsDead(), "RemoteClose does not close our side")
	require.True(t, p.conn.Send([]byte("still open")))
	p.expectRaw([]byte("still open\n"))
}

func TestConnection_RemoteCloseReturnsFalseOnClosedConnection(t *testing.T) {
	e := newEnv(t)
	p := e.newPipe(nil)

	require.True(t, p.conn.Close())
	assert.False(t, p.conn.RemoteClose(), "RemoteClose after Close")
	assert.False(t, waitFor(t, p.closes, "close event"), "hadError")
	assert.False(t, p.conn.RemoteClose(), "RemoteClose after the close event")
}

// Connection.parse: the frame "\\\n" is remoteClose, not a token.
func TestConnection_ControlFrameEmitsRemoteClose(t *testing.T) {
	e := newEnv(t)
	p := e.newPipe(nil)

	p.write([]byte("a\n\\\nb\n"))
	require.Equal(t, []byte("a"), waitFor(t, p.tokens, "token a"))
	waitFor(t, p.remoteCloses, "remoteClose event")
	require.Equal(t, []byte("b"), waitFor(t, p.tokens, "token b"))
	// A frame that merely starts with a backslash is not remoteClose.
	p.write([]byte("\\\\\n"))
	require.Equal(t, []byte("\\"), waitFor(t, p.tokens, "backslash token"))
	expectNothing(t, p.remoteCloses, 100*time.Millisecond, "second remoteClose")
}

// The socket's close bubbles up as close (without error), and the connection
// is dead.
func TestConnection_PeerCloseEmitsClose(t *testing.T) {
	e := newEnv(t)
	p := e.newPipe(nil)

	require.NoError(t, p.raw.Close())
	assert.False(t, waitFor(t, p.closes, "close event"), "hadError")
	assert.True(t, p.conn.IsDead())
	assert.False(t, p.conn.Send([]byte("x")), "Send on a connection the peer closed")
	assert.False(t, p.conn.Close(), "Close on a connection the peer closed")
}

// The original throws on an invalid escape and crashes the process; here it
// is an error event on that connection, then close(true).
func TestConnection_InvalidEscapeIsErrorThenClose(t *testing.T) {
	e := newEnv(t)
	p := e.newPipe(nil)

	p.write([]byte("ok\n\\x\n"))
	require.Equal(t, []byte("ok"), waitFor(t, p.tokens, "token before the bad frame"))
	err := waitFor(t, p.errs, "error event")
	assert.True(t, errors.Is(err, wire.ErrInvalidEscape), "errors.Is(%v, wire.ErrInvalidEscape)", err)
	assert.True(t, errors.Is(err, actors.ErrProtocol), "errors.Is(%v, actors.ErrProtocol)", err)
	assert.True(t, waitFor(t, p.closes, "close event"), "hadError")
	assert.True(t, p.conn.IsDead())
	waitClosed(t, p.rawDone, "raw end to see the close")
}

// RemoteClose on a live TLS connection reaches the client as remoteClose.
func TestConnection_RemoteCloseReachesClient(t *testing.T) {
	e := newEnv(t)
	s := e.startServer(nil)
	c := e.startClient(s.listening(), nil)
	c.connected()
	sc := waitFor(t, s.conns, "server connection")

	require.True(t, sc.RemoteClose(), "RemoteClose on a live connection")
	rc := waitFor(t, c.remoteCloses, "client remoteClose event")
	assert.Equal(t, actors.ONLINE, rc.status, "client status at remoteClose")
	require.NotNil(t, rc.conn)
	assert.Same(t, c.cli.Connection(), rc.conn, "remoteClose carries the client's connection")

	// The client honours it; then the server side is closed and dead.
	c.closedCleanly()
	cc := waitFor(t, s.connCloses, "server connection close")
	assert.Same(t, sc, cc.conn)
	assert.False(t, cc.hadError)
	assert.True(t, sc.IsDead())
	assert.False(t, sc.RemoteClose(), "RemoteClose on a closed connection")
	assert.False(t, sc.Send([]byte("x")), "Send on a closed connection")
}

// Closing a server-side Connection ends the client's connection cleanly.
func TestConnection_ServerSideCloseClosesClient(t *testing.T) {
	e := newEnv(t)
	s := e.startServer(nil)
	c := e.startClient(s.listening(), nil)
	c.connected()
	sc := waitFor(t, s.conns, "server connection")

	require.True(t, sc.Close())
	assert.False(t, sc.Close())
	ev := waitFor(t, c.closes, "client close event")
	assert.False(t, ev.hadError, "client hadError")
	assert.Equal(t, actors.OFFLINE, ev.status, "client status at close")
	cc := waitFor(t, s.connCloses, "server connection close")
	assert.Same(t, sc, cc.conn)
	assert.False(t, cc.hadError)
	assert.Equal(t, actors.ONLINE, s.srv.Status(), "the server keeps listening")
}

// Events of a Connection made by NewConnection carry its PID (the handle a
// handler actor replies through), from the first event on.
func TestConnection_HandlerEventsCarryConnPID(t *testing.T) {
	e := newEnv(t)
	pid, events := e.spawnHandler(nil)
	p := e.newPipe(func(o *actors.ConnectionOptions) { o.Handler = pid })

	conn := next[*actors.Connected](t, events)
	require.NotNil(t, p.conn.PID())
	assert.True(t, p.conn.PID().Equal(conn.Conn), "Connected.Conn = %v, want %v", conn.Conn, p.conn.PID())
	assert.Equal(t, p.conn.ID(), conn.ConnID)

	p.write([]byte("t\\n\\\\\n")) // the token "t\n\\"
	tr := next[*actors.TokenReceived](t, events)
	assert.Equal(t, []byte("t\n\\"), tr.Data)
	assert.True(t, p.conn.PID().Equal(tr.Conn))
	e.sys.Root.Send(tr.Conn, actors.SendToken{Data: []byte("reply\n")})
	p.expectRaw([]byte("reply\\n\n"))
}
