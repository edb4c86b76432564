package chaos

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/require"
	"github.com/tokenserver/tokenserver/actors"
)

// A server closed and started again on the same port while a client with
// reconnection keeps sending: every token either comes back or is reported
// dropped, counted exactly, and the buffered ones arrive after the reconnect.
// A token reported maybe sent (it was in a write that failed) may also come
// back; any other dropped token never does.
func TestServerRestartWhileClientSends(t *testing.T) {
	c := certs(t)
	srv := echoServer(t, c, 0, nil)
	p := port(srv)

	var mu sync.Mutex
	echoed := map[string]int{}
	dropped := map[string]int{}
	maybeSent := map[string]bool{}
	connects := make(chan struct{}, 16)
	reconnecting := make(chan int, 64)
	cli, err := actors.NewClient(actors.ClientOptions{
		Host: "127.0.0.1", Port: p, TLS: c.ClientOptions(),
		Runtime:   actors.Runtime{System: actors.NewQuietSystem()},
		Reconnect: fastPolicy(),
		OnConnect: func() { connects <- struct{}{} },
		OnToken: func(tok []byte, _ *actors.Connection) {
			mu.Lock()
			echoed[string(tok)]++
			mu.Unlock()
		},
		OnDropped: func(toks [][]byte, reason error) {
			mu.Lock()
			for _, tok := range toks {
				dropped[string(tok)]++
				if errors.Is(reason, actors.ErrMaybeSent) {
					maybeSent[string(tok)] = true
				}
			}
			mu.Unlock()
		},
		OnReconnecting: func(attempt int, _ time.Duration, _ string) { reconnecting <- attempt },
	})
	require.NoError(t, err)
	t.Cleanup(func() { shutdown(t, cli.Shutdown) })
	wait(t, connects, "first connect")

	sent := 0
	var tokens []string
	send := func(n int) {
		for i := 0; i < n; i++ {
			tok := fmt.Sprintf("token %d\nwith \\ escapes", sent)
			if cli.Send([]byte(tok)) {
				sent++
				tokens = append(tokens, tok)
			} else {
				t.Fatalf("Send refused token %d while reconnecting with a buffer", sent)
			}
		}
	}
	send(200)
	for round := 0; round < 3; round++ {
		srv2 := srv
		require.True(t, srv2.Close())
		// Keep sending while the server is down: these wait in the buffer.
		wait(t, reconnecting, "reconnecting event")
		send(100)
		require.Eventually(t, func() bool { return srv2.Status() == actors.OFFLINE }, deadline, time.Millisecond)
		require.True(t, srv2.Connect(0), "server connects again on the same port")
		wait(t, connects, "reconnect")
		send(100)
	}
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, tok := range tokens {
			if echoed[tok] == 0 && dropped[tok] == 0 {
				return false
			}
		}
		return true
	}, deadline, 5*time.Millisecond, "every token echoed or reported dropped")
	mu.Lock()
	defer mu.Unlock()
	both := 0
	for tok, n := range echoed {
		require.Equal(t, 1, n, "token %q echoed once", tok)
		if maybeSent[tok] {
			both++
			continue
		}
		require.Zero(t, dropped[tok], "token %q both echoed and dropped (not as maybe sent)", tok)
	}
	for tok, n := range dropped {
		require.Equal(t, 1, n, "token %q reported dropped once", tok)
	}
	require.Equal(t, sent, len(echoed)+len(dropped)-both, "sent = echoed + dropped - (maybe sent and echoed)")
	t.Logf("sent %d, echoed %d, dropped %d (maybe sent %d, of which echoed %d)", sent, len(echoed), len(dropped), len(maybeSent), both)
}

// Buffered tokens are written in order once connected.
func TestBufferedTokensArriveInOrder(t *testing.T) {
	c := certs(t)
	// A port where nothing listens yet.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())

	got := make(chan []byte, 100)
	connected := make(chan struct{}, 4)
	cli, err := actors.NewClient(actors.ClientOptions{
		Host: "127.0.0.1", Port: p, TLS: c.ClientOptions(),
		Runtime:   actors.Runtime{System: actors.NewQuietSystem()},
		Reconnect: fastPolicy(),
		OnConnect: func() { connected <- struct{}{} },
		OnToken:   func(tok []byte, _ *actors.Connection) { got <- tok },
	})
	require.NoError(t, err)
	t.Cleanup(func() { shutdown(t, cli.Shutdown) })
	for i := 0; i < 50; i++ {
		require.True(t, cli.Send([]byte(fmt.Sprint(i))))
	}
	require.Positive(t, cli.Buffered())
	echoServer(t, c, p, nil)
	wait(t, connected, "connect")
	for i := 0; i < 50; i++ {
		require.Equal(t, fmt.Sprint(i), string(wait(t, got, "echo")))
	}
	require.Zero(t, cli.Buffered())
}

// Tokens that do not fit in the buffer are refused and reported; Close
// reports what is left in it; nothing is lost silently.
func TestDroppedTokensAreReported(t *testing.T) {
	c := certs(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())

	type drop struct {
		toks   [][]byte
		reason error
	}
	drops := make(chan drop, 16)
	closed := make(chan bool, 4)
	r := fastPolicy()
	r.BufferSize = 10
	cli, err := actors.NewClient(actors.ClientOptions{
		Host: "127.0.0.1", Port: p, TLS: c.ClientOptions(),
		Runtime:   actors.Runtime{System: actors.NewQuietSystem()},
		Reconnect: r,
		OnDropped: func(toks [][]byte, reason error) { drops <- drop{toks, reason} },
		OnClose:   func(had bool) { closed <- had },
	})
	require.NoError(t, err)
	t.Cleanup(func() { shutdown(t, cli.Shutdown) })
	require.True(t, cli.Send([]byte("12345")))
	require.True(t, cli.Send([]byte("67890")))
	require.False(t, cli.Send([]byte("x")), "buffer full")
	d := wait(t, drops, "buffer-full drop")
	require.ErrorIs(t, d.reason, actors.ErrBufferFull)
	require.Equal(t, [][]byte{[]byte("x")}, d.toks)

	require.True(t, cli.Close())
	d = wait(t, drops, "drop on close")
	require.ErrorIs(t, d.reason, actors.ErrClientClosed)
	require.Equal(t, [][]byte{[]byte("12345"), []byte("67890")}, d.toks)
	// Close during the reconnect cycle ends it: a close event, then OFFLINE
	// for good. (A connect attempt that failed just before Close may give
	// its error first, and then the close has hadError set.)
	wait(t, closed, "close")
	require.Eventually(t, func() bool { return cli.Status() == actors.OFFLINE }, deadline, time.Millisecond)
	require.False(t, cli.Close(), "closed already")
}

// The retry limit gives up with an event, and the buffer is reported.
func TestReconnectGivesUp(t *testing.T) {
	c := certs(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())

	gaveUp := make(chan int, 1)
	drops := make(chan error, 4)
	attempts := make(chan int, 16)
	r := fastPolicy()
	r.Policy.Unlimited = false
	r.Policy.MaxRetries = 3
	cli, err := actors.NewClient(actors.ClientOptions{
		Host: "127.0.0.1", Port: p, TLS: c.ClientOptions(),
		Runtime:        actors.Runtime{System: actors.NewQuietSystem()},
		Reconnect:      r,
		OnReconnecting: func(a int, _ time.Duration, _ string) { attempts <- a },
		OnGaveUp:       func(n int, _ string) { gaveUp <- n },
		OnDropped:      func(_ [][]byte, reason error) { drops <- reason },
	})
	require.NoError(t, err)
	t.Cleanup(func() { shutdown(t, cli.Shutdown) })
	require.True(t, cli.Send([]byte("never delivered")))
	for want := 1; want <= 3; want++ {
		require.Equal(t, want, wait(t, attempts, "attempt"))
	}
	require.Equal(t, 4, wait(t, gaveUp, "gave up"))
	require.ErrorIs(t, wait(t, drops, "drop"), actors.ErrGaveUp)
	require.Equal(t, actors.OFFLINE, cli.Status())
	require.False(t, cli.Send([]byte("after giving up")))
}

// A callback that panics on one connection is reported with its value and
// takes down neither the server, nor that connection, nor the others.
func TestPanickingHandlerLeavesOthersRunning(t *testing.T) {
	c := certs(t)
	connErrs := make(chan error, 4)
	srv := echoServer(t, c, 0, func(o *actors.ServerOptions) {
		o.OnToken = func(tok []byte, conn *actors.Connection) {
			if bytes.Equal(tok, []byte("boom")) {
				panic("handler exploded")
			}
			conn.Send(tok)
		}
		o.OnConnectionError = func(_ *actors.Connection, err error) { connErrs <- err }
	})
	dial := func() (*actors.Client, chan []byte) {
		got := make(chan []byte, 8)
		up := make(chan struct{}, 1)
		cli, err := actors.NewClient(actors.ClientOptions{
			Host: "127.0.0.1", Port: port(srv), TLS: c.ClientOptions(),
			Runtime:   actors.Runtime{System: actors.NewQuietSystem()},
			OnConnect: func() { up <- struct{}{} },
			OnToken:   func(tok []byte, _ *actors.Connection) { got <- tok },
		})
		require.NoError(t, err)
		t.Cleanup(func() { shutdown(t, cli.Shutdown) })
		wait(t, up, "connect")
		return cli, got
	}
	bad, badGot := dial()
	good, goodGot := dial()
	require.True(t, bad.Send([]byte("boom")))
	err := wait(t, connErrs, "panic reported")
	require.True(t, errors.Is(err, actors.ErrHandlerPanic), "got %v", err)
	require.Contains(t, err.Error(), "handler exploded")
	// The token that caused it is not retried; the connection goes on.
	require.True(t, bad.Send([]byte("after the panic")))
	require.Equal(t, "after the panic", string(wait(t, badGot, "echo on the connection whose handler panicked")))
	require.True(t, good.Send([]byte("still here")))
	require.Equal(t, "still here", string(wait(t, goodGot, "echo on the healthy connection")))
	require.Equal(t, actors.ONLINE, srv.Status())
}

// A handler actor that panics is restarted by its supervisor (Proto.Actor's
// default strategy here) and the message that caused it is not retried: the
// next tokens are handled, on the same connection.
func TestPanickingHandlerActorIsRestarted(t *testing.T) {
	c := certs(t)
	sys := actors.NewQuietSystem()
	starts := make(chan struct{}, 8)
	handler := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *actor.Started:
			starts <- struct{}{}
		case *actors.TokenReceived:
			if string(m.Data) == "boom" {
				panic("handler actor exploded")
			}
			ctx.Send(m.Conn, actors.SendToken{Data: m.Data})
		}
	}))
	t.Cleanup(func() { _ = sys.Root.StopFuture(handler).Wait() })
	wait(t, starts, "handler started")
	srv := echoServer(t, c, 0, func(o *actors.ServerOptions) {
		o.OnToken = nil
		o.Handler = handler
		o.Runtime.System = sys // PIDs are only meaningful within one system
		// The token the handler panicked on never returns its credit: at
		// the end the connection waits CloseTimeout for it (5 s by
		// default, half the test's deadline for the whole shutdown).
		o.Limits.CloseTimeout = time.Second
	})
	got := make(chan []byte, 8)
	up := make(chan struct{}, 1)
	cli, err := actors.NewClient(actors.ClientOptions{
		Host: "127.0.0.1", Port: port(srv), TLS: c.ClientOptions(),
		Runtime:   actors.Runtime{System: sys},
		OnConnect: func() { up <- struct{}{} },
		OnToken:   func(tok []byte, _ *actors.Connection) { got <- tok },
	})
	require.NoError(t, err)
	t.Cleanup(func() { shutdown(t, cli.Shutdown) })
	wait(t, up, "connect")
	require.True(t, cli.Send([]byte("boom")))
	wait(t, starts, "handler restarted")
	require.True(t, cli.Send([]byte("after")))
	require.Equal(t, "after", string(wait(t, got, "reply from the restarted handler")))
}

// A server whose port is taken retries listening under its policy, with an
// event per retry, and listens once the port is free.
func TestServerRetriesListeningWhilePortIsTaken(t *testing.T) {
	c := certs(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := taken.Addr().(*net.TCPAddr).Port
	policy := fastPolicy().Policy
	errs := make(chan error, 64)
	closes := make(chan bool, 64)
	retries := make(chan int, 64)
	up := make(chan struct{}, 1)
	srv, err := actors.NewServer(actors.ServerOptions{
		Host: "127.0.0.1", Port: p, TLS: c.ServerOptions(),
		Runtime:       actors.Runtime{System: actors.NewQuietSystem()},
		ListenRetry:   &policy,
		OnError:       func(err error) { errs <- err },
		OnClose:       func(had bool) { closes <- had },
		OnListenRetry: func(attempt int, _ time.Duration, _ string) { retries <- attempt },
		OnConnect:     func() { up <- struct{}{} },
	})
	require.NoError(t, err)
	t.Cleanup(func() { shutdown(t, srv.Shutdown) })
	require.ErrorIs(t, wait(t, errs, "listen error"), actors.ErrListen)
	require.True(t, wait(t, closes, "close after the error"))
	require.Equal(t, 1, wait(t, retries, "first retry"))
	require.Equal(t, 2, wait(t, retries, "second retry"))
	require.NoError(t, taken.Close())
	wait(t, up, "listening once the port is free")
	require.Equal(t, actors.ONLINE, srv.Status())
	require.Equal(t, p, port(srv))
}

// Close during the retry wait stops everything: a close event, no listen.
func TestServerCloseDuringListenRetry(t *testing.T) {
	c := certs(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	policy := fastPolicy().Policy
	policy.Initial, policy.Max = time.Hour, time.Hour
	closes := make(chan bool, 4)
	retries := make(chan int, 4)
	srv, err := actors.NewServer(actors.ServerOptions{
		Host: "127.0.0.1", Port: taken.Addr().(*net.TCPAddr).Port, TLS: c.ServerOptions(),
		Runtime:       actors.Runtime{System: actors.NewQuietSystem()},
		ListenRetry:   &policy,
		OnClose:       func(had bool) { closes <- had },
		OnListenRetry: func(attempt int, _ time.Duration, _ string) { retries <- attempt },
	})
	require.NoError(t, err)
	require.True(t, wait(t, closes, "close after the failed listen"))
	wait(t, retries, "retry scheduled")
	require.Equal(t, actors.CONNECTING, srv.Status())
	require.True(t, srv.Close())
	require.False(t, wait(t, closes, "close after Close"))
	require.Equal(t, actors.OFFLINE, srv.Status())
	shutdown(t, srv.Shutdown)
}

// Close during a client's backoff wait stops everything, promptly.
func TestClientCloseDuringBackoff(t *testing.T) {
	c := certs(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	r := fastPolicy()
	r.Policy.Initial, r.Policy.Max = time.Hour, time.Hour
	closes := make(chan bool, 4)
	retries := make(chan int, 4)
	cli, err := actors.NewClient(actors.ClientOptions{
		Host: "127.0.0.1", Port: p, TLS: c.ClientOptions(),
		Runtime:        actors.Runtime{System: actors.NewQuietSystem()},
		Reconnect:      r,
		OnClose:        func(had bool) { closes <- had },
		OnReconnecting: func(a int, _ time.Duration, _ string) { retries <- a },
	})
	require.NoError(t, err)
	require.True(t, wait(t, closes, "close after the failed connect"))
	wait(t, retries, "backoff wait")
	start := time.Now()
	require.True(t, cli.Close())
	require.False(t, wait(t, closes, "close after Close"))
	require.Less(t, time.Since(start), 5*time.Second)
	require.Equal(t, actors.OFFLINE, cli.Status())
	shutdown(t, cli.Shutdown)
}
