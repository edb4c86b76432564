package conformance

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tokenserver/tokenserver/actors"
)

// spawnHandler spawns a test actor that forwards every event message to the
// returned channel. reply, if set, runs inside the actor for each message.
// It returns credit for each token it processed (actors.CreditMiddleware).
func (e *env) spawnHandler(reply func(ctx actor.Context)) (*actor.PID, chan any) {
	t := e.t
	ch := make(chan any, bufSize)
	pid := e.sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch ctx.Message().(type) {
		case *actors.Listening, *actors.Connected, *actors.TokenReceived,
			*actors.RemoteClosed, *actors.ErrorOccurred, *actors.Closed:
			put(ch, ctx.Message())
			if reply != nil {
				reply(ctx)
			}
		}
	}, actor.WithReceiverMiddleware(actors.CreditMiddleware)))
	// Registered before the server or client using it: stopped after them.
	t.Cleanup(func() {
		if err := e.sys.Root.StopFuture(pid).Wait(); err != nil {
			t.Errorf("stop handler: %v", err)
		}
	})
	return pid, ch
}

// next waits for the next event message and checks its type.
func next[T any](t *testing.T, ch <-chan any) T {
	t.Helper()
	var zero T
	m := waitFor(t, ch, fmt.Sprintf("handler message %T", zero))
	v, ok := m.(T)
	require.True(t, ok, "handler got %T (%+v), want %T", m, m, zero)
	return v
}

// A server's handler PID receives Listening, Connected, TokenReceived and
// Closed in order, and a SendToken to the Conn PID reaches the client.
func TestHandlerPID_ServerEventsInOrderAndReplyReachesClient(t *testing.T) {
	e := newEnv(t)
	pid, events := e.spawnHandler(func(ctx actor.Context) {
		if m, ok := ctx.Message().(*actors.TokenReceived); ok {
			ctx.Send(m.Conn, actors.SendToken{Data: append([]byte("pid: "), m.Data...)})
		}
	})
	s := e.startServer(func(o *actors.ServerOptions) {
		o.Handler = pid
		o.OnToken = nil // the handler answers
	})
	port := s.listening()

	l := next[*actors.Listening](t, events)
	assert.Equal(t, s.srv.Addr().String(), l.Addr)

	c := e.startClient(port, nil)
	c.connected()
	conn := next[*actors.Connected](t, events)
	require.NotNil(t, conn.Conn)
	assert.Equal(t, c.cli.Connection().LocalAddr().String(), conn.RemoteAddr)

	tok := []byte("ping\nwith \\ escapes")
	require.True(t, c.cli.Send(tok))
	tr := next[*actors.TokenReceived](t, events)
	assert.Equal(t, tok, tr.Data)
	assert.True(t, tr.Conn.Equal(conn.Conn), "TokenReceived.Conn is the Connected.Conn")
	assert.Equal(t, conn.ConnID, tr.ConnID)
	got := waitFor(t, c.tokens, "reply from the handler actor")
	assert.Equal(t, append([]byte("pid: "), tok...), got.data)

	// A SendToken from outside any actor (the root context) works too.
	e.sys.Root.Send(conn.Conn, actors.SendToken{Data: []byte("from root\n")})
	got = waitFor(t, c.tokens, "token sent by the root context")
	assert.Equal(t, []byte("from root\n"), got.data)
	e.sys.Root.Send(conn.Conn, &actors.SendToken{Data: []byte("by pointer")})
	got = waitFor(t, c.tokens, "token sent as *SendToken")
	assert.Equal(t, []byte("by pointer"), got.data)

	c.closedCleanly()
	cl := next[*actors.Closed](t, events)
	assert.True(t, cl.Conn.Equal(conn.Conn))
	assert.Equal(t, conn.ConnID, cl.ConnID)
	assert.False(t, cl.HadError)
	expectNothing(t, events, 50*time.Millisecond, "further handler message")
}

// A client's handler PID receives Connected, TokenReceived, RemoteClosed and
// Closed in order.
func TestHandlerPID_ClientEventsInOrder(t *testing.T) {
	e := newEnv(t)
	s := e.startServer(nil)
	port := s.listening()
	pid, events := e.spawnHandler(func(ctx actor.Context) {
		if m, ok := ctx.Message().(*actors.RemoteClosed); ok {
			ctx.Send(m.Conn, actors.CloseConnection{}) // honour remoteClose
		}
	})
	c := e.startClient(port, func(o *actors.ClientOptions) { o.Handler = pid })
	c.connected()
	conn := next[*actors.Connected](t, events)
	require.NotNil(t, conn.Conn)

	c.roundTrip([]byte("echo me"))
	tr := next[*actors.TokenReceived](t, events)
	assert.Equal(t, []byte("echo me"), tr.Data)
	assert.True(t, tr.Conn.Equal(conn.Conn))

	require.True(t, s.srv.Close())
	rc := next[*actors.RemoteClosed](t, events)
	assert.True(t, rc.Conn.Equal(conn.Conn))
	cl := next[*actors.Closed](t, events)
	assert.False(t, cl.HadError)
	sc := waitFor(t, s.closes, "server close event")
	assert.False(t, sc.hadError, "the client closed when asked: no forced close")
}

// An error reaches the handler as ErrorOccurred with its code, then Closed
// with HadError.
func TestHandlerPID_ErrorOccurredThenClosed(t *testing.T) {
	e := newEnv(t)
	pid, events := e.spawnHandler(nil)
	s := e.startServer(func(o *actors.ServerOptions) { o.Handler = pid })
	s.listening()
	next[*actors.Listening](t, events)

	raw := rawTLS(t, s.addr(), e.clientTLSConfig())
	_, err := raw.Write([]byte("\\x\n"))
	require.NoError(t, err)
	conn := next[*actors.Connected](t, events)
	eo := next[*actors.ErrorOccurred](t, events)
	assert.Equal(t, actors.CodeInvalidEscape, eo.Code)
	assert.NotEmpty(t, eo.Message)
	assert.True(t, eo.Conn.Equal(conn.Conn))
	cl := next[*actors.Closed](t, events)
	assert.True(t, cl.HadError)
	assert.True(t, cl.Conn.Equal(conn.Conn))
	_, err = readUntilEnd(raw)
	assert.False(t, errors.Is(err, errTimeout), "the server did not close the bad connection")
}
