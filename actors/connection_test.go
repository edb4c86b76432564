package actors

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tokenserver/tokenserver/tlsio"
	"github.com/tokenserver/tokenserver/wire"
)

const deadline = 10 * time.Second

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(deadline):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// pipeConn wraps one end of a net.Pipe in a Connection and reports its
// events on channels.
type pipeConn struct {
	c      *Connection
	peer   net.Conn
	tokens chan []byte
	errs   chan error
	closes chan bool
}

func newPipeConn(t *testing.T, limits Limits, onToken func([]byte, *Connection)) *pipeConn {
	t.Helper()
	a, b := net.Pipe()
	p := &pipeConn{peer: b, tokens: make(chan []byte, 64), errs: make(chan error, 4), closes: make(chan bool, 4)}
	if onToken == nil {
		onToken = func(tok []byte, _ *Connection) { p.tokens <- tok }
	}
	c, err := NewConnection(a, ConnectionOptions{
		Limits:  limits,
		OnToken: onToken,
		OnError: func(err error) { p.errs <- err },
		OnClose: func(had bool) { p.closes <- had },
	})
	require.NoError(t, err)
	p.c = c
	t.Cleanup(func() {
		b.Close()
		c.Close()
		select { // wait for the actor to finish, so goleak sees nothing left
		case <-p.closes:
		case <-time.After(deadline):
			t.Error("connection did not close")
		}
	})
	return p
}

func TestConnectionDeliversTokensOfOneChunkInOrder(t *testing.T) {
	p := newPipeConn(t, Limits{}, nil)
	go p.peer.Write([]byte("a\nb\\nc\n\n"))
	require.Equal(t, "a", string(recv(t, p.tokens, "a")))
	require.Equal(t, "b\nc", string(recv(t, p.tokens, "b\\nc")))
	require.Equal(t, "", string(recv(t, p.tokens, "empty")))
}

func TestConnectionInvalidEscapeIsErrorThenClose(t *testing.T) {
	p := newPipeConn(t, Limits{}, nil)
	go p.peer.Write([]byte("ok\n\\x\n"))
	require.Equal(t, "ok", string(recv(t, p.tokens, "ok")))
	err := recv(t, p.errs, "error")
	require.ErrorIs(t, err, ErrProtocol)
	require.ErrorIs(t, err, wire.ErrInvalidEscape)
	var esc *wire.InvalidEscapeError
	require.ErrorAs(t, err, &esc)
	require.Equal(t, byte('x'), esc.Byte)
	require.Equal(t, CodeInvalidEscape, ErrorCode(err))
	require.True(t, recv(t, p.closes, "close"))
	p.closes <- true // for the cleanup
	require.True(t, p.c.IsDead())
	require.False(t, p.c.Send([]byte("late")))
}

func TestConnectionTokenOverLimitFailsWithoutNewline(t *testing.T) {
	p := newPipeConn(t, Limits{MaxTokenSize: 1024}, nil)
	// A peer that never sends a newline: the error comes as soon as the
	// frame passes the limit.
	go p.peer.Write(bytes.Repeat([]byte("z"), 4096))
	err := recv(t, p.errs, "error")
	require.ErrorIs(t, err, wire.ErrTokenTooLarge)
	require.Equal(t, CodeTokenTooLarge, ErrorCode(err))
	require.True(t, recv(t, p.closes, "close"))
	p.closes <- true
}

// A peer that never reads: Send takes tokens past the high-water mark, up to
// the hard cap; there it returns false and the connection fails as a slow
// consumer (ErrSlowConsumer wrapping ErrQueueFull).
func TestConnectionHardCapCutsSlowConsumer(t *testing.T) {
	const hwm, maxQueue = 16 << 10, 64 << 10
	p := newPipeConn(t, Limits{HighWaterMark: hwm, MaxQueue: maxQueue, WriteTimeout: time.Minute}, nil)
	tok := bytes.Repeat([]byte("q"), 1000)
	refused, accepted := false, 0
	for i := 0; i < 1000 && !refused; i++ {
		refused = !p.c.Send(tok)
		if !refused {
			accepted++
		}
		require.LessOrEqual(t, p.c.Queued(), maxQueue, "queued bytes stay under the hard cap")
	}
	require.True(t, refused, "Send refused at the hard cap")
	require.Greater(t, accepted*len(tok), hwm, "Send took tokens past the high-water mark")
	err := recv(t, p.errs, "error")
	require.ErrorIs(t, err, ErrSlowConsumer)
	require.ErrorIs(t, err, ErrQueueFull)
	require.Equal(t, CodeSlowConsumer, ErrorCode(err))
	require.True(t, recv(t, p.closes, "close"))
	p.closes <- true
}

// A peer that never reads, with data waiting: closed after the write
// timeout as a slow consumer.
func TestConnectionSlowConsumerAfterWriteTimeout(t *testing.T) {
	p := newPipeConn(t, Limits{WriteTimeout: 100 * time.Millisecond}, nil)
	require.True(t, p.c.Send([]byte("never read")))
	err := recv(t, p.errs, "error")
	require.ErrorIs(t, err, tlsio.ErrWriteTimeout)
	require.ErrorIs(t, err, ErrSlowConsumer)
	require.Equal(t, CodeSlowConsumer, ErrorCode(err))
	require.True(t, recv(t, p.closes, "close"))
	p.closes <- true
}

// A handler that falls behind stops the reading: the peer's writes block
// (net.Pipe has no buffer) instead of input piling up in memory.
func TestConnectionStopsReadingWhileHandlerIsBehind(t *testing.T) {
	release := make(chan struct{})
	got := make(chan []byte, 1024)
	p := newPipeConn(t, Limits{ReadWindow: 1, ReadBufferSize: 16}, func(tok []byte, _ *Connection) {
		<-release
		got <- tok
	})
	wrote := make(chan int, 1)
	go func() {
		n := 0
		for i := 0; i < 200; i++ {
			if _, err := p.peer.Write([]byte("0123456789abcd\n")); err != nil {
				break
			}
			n++
		}
		wrote <- n
	}()
	select {
	case n := <-wrote:
		t.Fatalf("the peer wrote all %d tokens while the handler was blocked", n)
	case <-time.After(200 * time.Millisecond): // bounded wait for a non-event
	}
	close(release)
	require.Equal(t, 200, recv(t, wrote, "writes finish once the handler runs"))
	for i := 0; i < 200; i++ {
		require.Equal(t, "0123456789abcd", string(recv(t, got, "token")))
	}
}

func TestConnectionCloseIsCleanAndFlushes(t *testing.T) {
	p := newPipeConn(t, Limits{}, nil)
	read := make(chan []byte, 1)
	closedByUs := make(chan struct{})
	go func() {
		buf := make([]byte, len("last\\nwords\n"))
		_, _ = io.ReadFull(p.peer, buf)
		read <- buf
		<-closedByUs   // else its close would come first and Close return false
		p.peer.Close() // the peer closes its side once it has read
	}()
	require.True(t, p.c.Send([]byte("last\nwords")))
	require.True(t, p.c.Close())
	close(closedByUs)
	require.False(t, p.c.Close())
	require.True(t, p.c.IsDead())
	require.False(t, p.c.Send([]byte("x")))
	require.False(t, p.c.RemoteClose())
	select {
	case err := <-p.errs:
		t.Fatalf("unexpected error %v", err)
	case had := <-p.closes:
		require.False(t, had)
	case <-time.After(deadline):
		t.Fatal("no close")
	}
	p.closes <- false
	require.Equal(t, "last\\nwords\n", string(recv(t, read, "peer read")))
}

func TestOptionsAreValidated(t *testing.T) {
	certs, err := tlsio.GenerateDevCerts()
	require.NoError(t, err)
	_, err = NewServer(ServerOptions{Port: -1, TLS: certs.ServerOptions()})
	require.ErrorIs(t, err, ErrInvalidOptions)
	_, err = NewServer(ServerOptions{TLS: certs.ServerOptions(), Limits: Limits{MaxTokenSize: -1}})
	require.ErrorIs(t, err, ErrInvalidOptions)
	_, err = NewServer(ServerOptions{TLS: tlsio.Options{RequestCert: true}})
	require.ErrorIs(t, err, ErrInvalidOptions)
	_, err = NewClient(ClientOptions{Port: 0, TLS: certs.ClientOptions()})
	require.ErrorIs(t, err, ErrInvalidOptions)
	bad := DefaultReconnect()
	bad.Policy.MaxRetries = 0
	_, err = NewClient(ClientOptions{Port: 1, TLS: certs.ClientOptions(), Reconnect: bad})
	require.ErrorIs(t, err, ErrInvalidOptions)
	_, err = NewConnection(nil, ConnectionOptions{})
	require.ErrorIs(t, err, ErrInvalidOptions)
}

func TestErrorCodes(t *testing.T) {
	for err, code := range map[error]string{
		ErrHandshake:          CodeHandshake,
		ErrListen:             CodeListen,
		ErrDial:               CodeDial,
		ErrTooManyConnections: CodeTooManyConns,
		ErrHandlerPanic:       CodeHandlerPanic,
		ErrForcedClose:        CodeForcedClose,
		ErrBufferFull:         CodeBufferFull,
		ErrGaveUp:             CodeGaveUp,
		ErrClientClosed:       CodeClientClosed,
		ErrNotSent:            CodeNotSent,
		ErrConnection:         CodeConnection,
		errors.New("other"):   CodeOther,
	} {
		require.Equal(t, code, ErrorCode(errors.Join(errors.New("context"), err)), "%v", err)
	}
}

// A flood of tiny tokens to a peer that never reads is bounded: queued
// messages count with their overhead, queued frames with their bytes.
func TestConnectionTinyTokenFloodIsBounded(t *testing.T) {
	const maxQueue = 64 << 10
	p := newPipeConn(t, Limits{HighWaterMark: maxQueue / 2, MaxQueue: maxQueue, WriteTimeout: time.Minute}, nil)
	accepted := 0
	for i := 0; i < 1_000_000 && p.c.Send([]byte("x")); i++ {
		accepted++
		require.LessOrEqual(t, p.c.Queued(), maxQueue)
	}
	require.LessOrEqual(t, accepted, maxQueue/2, "tiny tokens taken before the queue was full")
	require.ErrorIs(t, recv(t, p.errs, "queue full"), ErrQueueFull)
	require.True(t, recv(t, p.closes, "close"))
	p.closes <- true
}
