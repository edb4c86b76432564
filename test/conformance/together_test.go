package conformance

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tokenserver/tokenserver/actors"
)

// Tokens with newlines and backslashes go client -> server -> client byte for
// byte and in order.
func TestTogether_TokensWithNewlinesAndBackslashesEchoInOrder(t *testing.T) {
	e := newEnv(t)
	s := e.startServer(nil)
	c := e.startClient(s.listening(), nil)
	c.connected()

	rng := rand.New(rand.NewPCG(1, 2))
	big := make([]byte, 200<<10)
	for i := range big {
		switch rng.IntN(4) {
		case 0:
			big[i] = '\n'
		case 1:
			big[i] = '\\'
		default:
			big[i] = byte(rng.IntN(256))
		}
	}
	tokens := [][]byte{
		[]byte("plain"),
		[]byte("a\nb"),
		[]byte("back\\slash"),
		[]byte("\\n is not a newline"),
		[]byte("\n"),
		[]byte("\\"), // decoded alone it is not remoteClose: it goes out as "\\\\\n"
		[]byte("\\\n\\\n"),
		{},
		[]byte("ends with a backslash\\"),
		[]byte("\n\n\n"),
		{0, 0xff, 0x0a, 0x5c, 0x6e, 0x0d},
		big,
	}
	for i := 0; i < 100; i++ { // many small ones, sent without waiting
		tokens = append(tokens, []byte{byte(i), '\n', '\\', byte(i)})
	}
	for _, tok := range tokens {
		require.True(t, c.cli.Send(tok))
	}
	for i, want := range tokens {
		got := waitFor(t, c.tokens, "echo")
		require.True(t, bytes.Equal(want, got.data), "echo %d: got %d bytes %q, want %d bytes %q",
			i, len(got.data), short(got.data), len(want), short(want))
	}
	// The server saw the same tokens, in the same order.
	for i, want := range tokens {
		got := waitFor(t, s.tokens, "server token")
		require.True(t, bytes.Equal(want, got.data), "server token %d differs", i)
	}
}

// Every "escape" vector of the original echoes byte for byte, in order.
func TestTogether_WireVectorsEchoByteForByte(t *testing.T) {
	vs := loadVectors(t)
	e := newEnv(t)
	s := e.startServer(nil)
	c := e.startClient(s.listening(), nil)
	c.connected()

	for _, v := range vs.Escape {
		require.True(t, c.cli.Send(v.in), v.Name)
	}
	for _, v := range vs.Escape {
		got := waitFor(t, c.tokens, "echo of vector "+v.Name)
		assert.Equal(t, v.in, got.data, "vector %q", v.Name)
	}
}

// On the wire, both directions: a peer speaking the original's bytes
// (wire_hex) is understood token for token, and what the server sends back
// is exactly the original's encoding.
func TestTogether_WireVectorsMatchRawBytes(t *testing.T) {
	vs := loadVectors(t)
	e := newEnv(t)
	s := e.startServer(nil)
	s.listening()
	raw := rawTLS(t, s.addr(), e.clientTLSConfig())

	var all []byte
	for _, v := range vs.Escape {
		all = append(all, v.wire...)
	}
	_, err := raw.Write(all) // all frames in one write
	require.NoError(t, err)
	for _, v := range vs.Escape {
		got := waitFor(t, s.tokens, "server token of vector "+v.Name)
		assert.Equal(t, v.in, got.data, "decoded vector %q", v.Name)
	}
	echoed := readN(t, raw, len(all))
	assert.Equal(t, all, echoed, "the server's encoding of the echoes")
}

// Several frames in one TLS write come out in order.
func TestTogether_SeveralTokensInOneWriteInOrder(t *testing.T) {
	e := newEnv(t)
	s := e.startServer(nil)
	s.listening()
	raw := rawTLS(t, s.addr(), e.clientTLSConfig())

	_, err := raw.Write([]byte("a\nb\nc\n"))
	require.NoError(t, err)
	for _, want := range []string{"a", "b", "c"} {
		got := waitFor(t, s.tokens, "token "+want)
		assert.Equal(t, []byte(want), got.data)
	}
	assert.Equal(t, []byte("a\nb\nc\n"), readN(t, raw, 6))
}

// The server replies through the Connection given to OnToken: it is the live
// connection of that client.
func TestTogether_ServerRepliesThroughConnectionOfToken(t *testing.T) {
	e := newEnv(t)
	seen := make(chan tokenAt, bufSize)
	s := e.startServer(func(o *actors.ServerOptions) {
		o.OnToken = func(token []byte, c *actors.Connection) {
			put(seen, tokenAt{token, c})
			c.Send(append([]byte("re: "), token...))
		}
	})
	port := s.listening()
	c1 := e.startClient(port, nil)
	c1.connected()
	c2 := e.startClient(port, nil)
	c2.connected()
	sc1 := waitFor(t, s.conns, "first server connection")
	sc2 := waitFor(t, s.conns, "second server connection")

	require.True(t, c1.cli.Send([]byte("one")))
	got := waitFor(t, c1.tokens, "reply to client 1")
	assert.Equal(t, []byte("re: one"), got.data)
	require.True(t, c2.cli.Send([]byte("two")))
	got = waitFor(t, c2.tokens, "reply to client 2")
	assert.Equal(t, []byte("re: two"), got.data)

	t1 := waitFor(t, seen, "server token one")
	t2 := waitFor(t, seen, "server token two")
	assert.NotSame(t, t1.conn, t2.conn)
	assert.Contains(t, []*actors.Connection{sc1, sc2}, t1.conn)
	assert.Contains(t, []*actors.Connection{sc1, sc2}, t2.conn)
	assert.Equal(t, c1.cli.Connection().LocalAddr().String(), t1.conn.RemoteAddr().String(),
		"the token's connection is the sending client's")
	expectNothing(t, c1.tokens, 50*time.Millisecond, "reply meant for the other client")
}

// Server.Connections lists the live connections, and a closed one leaves.
func TestTogether_ConnectionsTrackLiveConnections(t *testing.T) {
	e := newEnv(t)
	s := e.startServer(nil)
	port := s.listening()
	c1 := e.startClient(port, nil)
	c1.connected()
	sc1 := waitFor(t, s.conns, "first server connection")
	require.Len(t, s.srv.Connections(), 1)
	assert.Same(t, sc1, s.srv.Connections()[0])
	assert.Equal(t, c1.cli.Connection().LocalAddr().String(), sc1.RemoteAddr().String())

	c2 := e.startClient(port, nil)
	c2.connected()
	sc2 := waitFor(t, s.conns, "second server connection")
	assert.ElementsMatch(t, []*actors.Connection{sc1, sc2}, s.srv.Connections())

	c1.closedCleanly()
	cc := waitFor(t, s.connCloses, "server connection close")
	assert.Same(t, sc1, cc.conn)
	assert.False(t, cc.hadError)
	require.Len(t, s.srv.Connections(), 1, "a closed connection leaves Connections()")
	assert.Same(t, sc2, s.srv.Connections()[0])
	c2.roundTrip([]byte("the other one lives"))

	c2.closedCleanly()
	waitFor(t, s.connCloses, "second server connection close")
	assert.Empty(t, s.srv.Connections())
}

// Server.Close sends remoteClose; a client that then closes lets the server
// close with hadError false.
func TestTogether_ServerCloseSendsRemoteCloseAndClientCloses(t *testing.T) {
	e := newEnv(t)
	s := e.startServer(nil)
	c := e.startClient(s.listening(), nil)
	c.connected()
	sc := waitFor(t, s.conns, "server connection")

	require.True(t, s.srv.Close())
	assert.Equal(t, actors.CLOSED, s.srv.Status())
	rc := waitFor(t, c.remoteCloses, "client remoteClose event")
	assert.Equal(t, actors.ONLINE, rc.status, "client status at remoteClose")
	expectNothing(t, s.closes, 100*time.Millisecond, "server close before the client closed")
	assert.Equal(t, actors.CLOSED, s.srv.Status(), "the server waits for its client")

	c.closedCleanly()
	cc := waitFor(t, s.connCloses, "server connection close")
	assert.Same(t, sc, cc.conn)
	assert.False(t, cc.hadError)
	ev := waitFor(t, s.closes, "server close event")
	assert.False(t, ev.hadError, "server hadError")
	assert.Equal(t, actors.OFFLINE, ev.status)
	expectNothing(t, s.connErrs, 0, "connection error")
}

// A client that ignores remoteClose is closed by force after the deadline.
func TestTogether_ClientIgnoringRemoteCloseIsForceClosed(t *testing.T) {
	const deadline = 300 * time.Millisecond
	e := newEnv(t)
	s := e.startServer(func(o *actors.ServerOptions) { o.Limits.CloseTimeout = deadline })
	c := e.startClient(s.listening(), nil) // records remoteClose, does nothing
	c.connected()
	sc := waitFor(t, s.conns, "server connection")

	start := time.Now()
	require.True(t, s.srv.Close())
	waitFor(t, c.remoteCloses, "client remoteClose event")
	ce := waitFor(t, s.connErrs, "server connection error")
	assert.GreaterOrEqual(t, time.Since(start), deadline, "forced before the deadline")
	assert.Same(t, sc, ce.conn)
	assert.True(t, errors.Is(ce.err, actors.ErrForcedClose), "errors.Is(%v, actors.ErrForcedClose)", ce.err)
	cc := waitFor(t, s.connCloses, "server connection close")
	assert.True(t, cc.hadError)
	ev := waitFor(t, s.closes, "server close event")
	assert.Equal(t, actors.OFFLINE, ev.status)
	cl := waitFor(t, c.closes, "client close event")
	assert.Equal(t, actors.OFFLINE, cl.status)
	assert.Equal(t, actors.OFFLINE, c.cli.Status())
}

// Send copies the token: the caller may reuse its buffer at once.
func TestTogether_SendCopiesToken(t *testing.T) {
	e := newEnv(t)
	s := e.startServer(nil)
	c := e.startClient(s.listening(), nil)
	c.connected()

	buf := []byte("original")
	require.True(t, c.cli.Send(buf))
	copy(buf, "XXXXXXXX")
	got := waitFor(t, c.tokens, "echo")
	assert.Equal(t, []byte("original"), got.data)
}

// A single token larger than the high-water mark is still taken by an empty
// queue (the original has no limit on what it sends).
func TestTogether_TokenLargerThanHighWaterMarkIsSent(t *testing.T) {
	e := newEnv(t)
	s := e.startServer(nil)
	c := e.startClient(s.listening(), func(o *actors.ClientOptions) { o.Limits.HighWaterMark = 64 << 10 })
	c.connected()

	big := bytes.Repeat([]byte("0123456789\n\\"), (1<<20)/12)
	c.roundTrip(big)
	c.roundTrip([]byte("small after big"))
}
