package conformance

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
	"github.com/tokenserver/tokenserver/wire"
)

// healthy starts a well-behaved client of port, waits until the server has
// its connection, and checks an echo. It returns the client and the server's
// connection for it.
func (e *env) healthy(s *serverRig, port int) (*clientRig, *actors.Connection) {
	e.t.Helper()
	c := e.startClient(port, nil)
	c.connected()
	sc := waitFor(e.t, s.conns, "server connection of the healthy client")
	c.roundTrip([]byte("healthy before"))
	return c, sc
}

// stillHealthy checks that the server is listening, that the healthy client
// still exchanges tokens, and that it is the only live connection.
func stillHealthy(t *testing.T, s *serverRig, c *clientRig, sc *actors.Connection) {
	t.Helper()
	assert.Equal(t, actors.ONLINE, s.srv.Status(), "server status")
	c.roundTrip([]byte("healthy after\n\\"))
	c.roundTrip([]byte("and again"))
	assert.Equal(t, []*actors.Connection{sc}, s.srv.Connections(), "live connections")
	assert.False(t, sc.IsDead())
	expectNothing(t, s.errs, 0, "server error event")
}

// expectConnFailure waits for one connection's error event, checks it with
// check, then waits for that connection's close(true).
func expectConnFailure(t *testing.T, s *serverRig, check func(err error)) *actors.Connection {
	t.Helper()
	ce := waitFor(t, s.connErrs, "server connection error event")
	check(ce.err)
	cc := waitFor(t, s.connCloses, "server connection close event")
	assert.Same(t, ce.conn, cc.conn, "error and close are of the same connection")
	assert.True(t, cc.hadError, "hadError after an error event")
	return ce.conn
}

// An invalid escape closes that one connection with a protocol error; the
// original would crash the whole process here.
func TestBadInput_InvalidEscapeClosesOnlyThatConnection(t *testing.T) {
	e := newEnv(t)
	s := e.startServer(nil)
	port := s.listening()
	c, sc := e.healthy(s, port)

	raw := rawTLS(t, s.addr(), e.clientTLSConfig())
	_, err := raw.Write([]byte("\\x\n"))
	require.NoError(t, err)
	bad := expectConnFailure(t, s, func(err error) {
		assert.True(t, errors.Is(err, wire.ErrInvalidEscape), "errors.Is(%v, wire.ErrInvalidEscape)", err)
		assert.True(t, errors.Is(err, actors.ErrProtocol), "errors.Is(%v, actors.ErrProtocol)", err)
		assert.Equal(t, actors.CodeInvalidEscape, actors.ErrorCode(err))
	})
	assert.NotSame(t, sc, bad)
	assert.True(t, bad.IsDead())
	_, err = readUntilEnd(raw)
	assert.False(t, errors.Is(err, errTimeout), "the bad connection was not closed: %v", err)

	stillHealthy(t, s, c, sc)
}

// Every frame the original rejects (other than the control frame) is a
// protocol error on the connection that sent it.
func TestBadInput_RejectedVectorsAreProtocolErrors(t *testing.T) {
	vs := loadVectors(t)
	e := newEnv(t)
	s := e.startServer(nil)
	port := s.listening()
	c, sc := e.healthy(s, port)

	n := 0
	for _, v := range vs.Rejected {
		if bytes.Equal(v.wire, []byte("\\\n")) {
			continue // the remoteClose control frame, see the next test
		}
		n++
		raw := rawTLS(t, s.addr(), e.clientTLSConfig())
		_, err := raw.Write(v.wire)
		require.NoError(t, err, v.Name)
		expectConnFailure(t, s, func(err error) {
			assert.True(t, errors.Is(err, wire.ErrInvalidEscape), "vector %q: %v", v.Name, err)
			assert.True(t, errors.Is(err, actors.ErrProtocol), "vector %q: %v", v.Name, err)
		})
		_, err = readUntilEnd(raw)
		assert.False(t, errors.Is(err, errTimeout), "vector %q: connection not closed", v.Name)
	}
	require.NotZero(t, n, "no rejected vectors")
	stillHealthy(t, s, c, sc)
}

// The original server does not listen to remoteClose from a client: the
// control frame from a client is no token, and the connection stays up.
func TestBadInput_ControlFrameFromClientIsIgnoredByServer(t *testing.T) {
	e := newEnv(t)
	s := e.startServer(nil)
	s.listening()
	raw := rawTLS(t, s.addr(), e.clientTLSConfig())

	_, err := raw.Write([]byte("\\\nafter\n"))
	require.NoError(t, err)
	got := waitFor(t, s.tokens, "token after the control frame")
	assert.Equal(t, []byte("after"), got.data)
	assert.Equal(t, []byte("after\n"), readN(t, raw, 6))
	expectNothing(t, s.connErrs, 50*time.Millisecond, "connection error")
	assert.Len(t, s.srv.Connections(), 1)
}

// A token over Limits.MaxTokenSize is a protocol error; one of exactly the
// limit is fine.
func TestBadInput_TokenTooLarge(t *testing.T) {
	const limit = 1024
	e := newEnv(t)
	s := e.startServer(func(o *actors.ServerOptions) { o.Limits.MaxTokenSize = limit })
	port := s.listening()
	c, sc := e.healthy(s, port)
	c.roundTrip(bytes.Repeat([]byte("a"), limit)) // at the limit
	// Escapes count decoded: 1024 newlines are 2048 bytes on the wire.
	c.roundTrip(bytes.Repeat([]byte("\n"), limit))

	bad := e.startClient(port, nil)
	bad.connected()
	waitFor(t, s.conns, "server connection of the bad client")
	require.True(t, bad.cli.Send(bytes.Repeat([]byte("#"), limit+1)))
	expectConnFailure(t, s, func(err error) {
		assert.True(t, errors.Is(err, wire.ErrTokenTooLarge), "errors.Is(%v, wire.ErrTokenTooLarge)", err)
		assert.True(t, errors.Is(err, actors.ErrProtocol), "errors.Is(%v, actors.ErrProtocol)", err)
		assert.Equal(t, actors.CodeTokenTooLarge, actors.ErrorCode(err))
	})
	cl := waitFor(t, bad.closes, "bad client close event")
	assert.Equal(t, actors.OFFLINE, cl.status)
	// No part of the large token was delivered as a token.
	for len(s.tokens) > 0 {
		tok := <-s.tokens
		assert.False(t, bytes.Contains(tok.data, []byte("#")), "part of the large token delivered: %d bytes", len(tok.data))
	}

	stillHealthy(t, s, c, sc)
}

// A large token that never ends (no newline) is cut at the limit too, without
// waiting for a newline.
func TestBadInput_EndlessTokenIsCutAtTheLimit(t *testing.T) {
	const limit = 1024
	e := newEnv(t)
	s := e.startServer(func(o *actors.ServerOptions) { o.Limits.MaxTokenSize = limit })
	port := s.listening()
	c, sc := e.healthy(s, port)

	raw := rawTLS(t, s.addr(), e.clientTLSConfig())
	// No newline. The server may cut us off while we still write: ignore
	// the write error.
	_, _ = raw.Write(bytes.Repeat([]byte("z"), 4*limit))
	expectConnFailure(t, s, func(err error) {
		assert.True(t, errors.Is(err, wire.ErrTokenTooLarge), "errors.Is(%v, wire.ErrTokenTooLarge)", err)
	})
	stillHealthy(t, s, c, sc)
}

// A client without a certificate fails the handshake (requestCert with
// rejectUnauthorized); the server reports it on that connection and keeps
// running.
func TestBadInput_ClientWithoutCertificate(t *testing.T) {
	e := newEnv(t)
	s := e.startServer(nil)
	port := s.listening()
	c, sc := e.healthy(s, port)

	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(e.certs.CACert))
	d := &net.Dialer{Timeout: wait}
	raw, err := tls.DialWithDialer(d, "tcp", s.addr(), &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	if err == nil { // TLS 1.3: the client finishes before the server refuses
		t.Cleanup(func() { _ = raw.Close() })
		require.NoError(t, raw.SetDeadline(time.Now().Add(wait)))
		_, err = readUntilEnd(raw)
		assert.False(t, errors.Is(err, errTimeout), "the server did not refuse the client")
	}
	bad := expectConnFailure(t, s, func(err error) {
		assert.True(t, errors.Is(err, actors.ErrHandshake), "errors.Is(%v, actors.ErrHandshake)", err)
		assert.Equal(t, actors.CodeHandshake, actors.ErrorCode(err))
	})
	assert.NotSame(t, sc, bad)
	expectNothing(t, s.conns, 0, "connect event for a client that failed its handshake")

	stillHealthy(t, s, c, sc)
}

// A client whose certificate is signed by another CA is refused as well.
func TestBadInput_ClientCertificateFromAnotherCA(t *testing.T) {
	e := newEnv(t)
	s := e.startServer(nil)
	port := s.listening()
	c, sc := e.healthy(s, port)

	other, err := tlsio.GenerateDevCerts()
	require.NoError(t, err)
	opts := other.ClientOptions()
	opts.CA = e.certs.CACert // trusts our server, shows a foreign certificate
	bad := e.startClient(port, func(o *actors.ClientOptions) { o.TLS = opts })

	expectConnFailure(t, s, func(err error) {
		assert.True(t, errors.Is(err, actors.ErrHandshake), "errors.Is(%v, actors.ErrHandshake)", err)
	})
	cl := waitFor(t, bad.closes, "bad client close event")
	assert.True(t, cl.hadError, "the refused client's close has hadError")
	assert.Equal(t, actors.OFFLINE, cl.status)
	waitFor(t, bad.errs, "bad client error event")

	stillHealthy(t, s, c, sc)
}

// A client that trusts another CA refuses our server: error, then close(true).
func TestBadInput_ClientTrustingAnotherCA(t *testing.T) {
	e := newEnv(t)
	s := e.startServer(nil)
	port := s.listening()
	c, sc := e.healthy(s, port)

	other, err := tlsio.GenerateDevCerts()
	require.NoError(t, err)
	bad := e.startClient(port, func(o *actors.ClientOptions) { o.TLS = other.ClientOptions() })

	ev := waitFor(t, bad.errs, "bad client error event")
	assert.Equal(t, actors.CONNECTING, ev.status, "status during the error event")
	assert.True(t, errors.Is(ev.err, actors.ErrDial), "errors.Is(%v, actors.ErrDial)", ev.err)
	var verr *tls.CertificateVerificationError
	assert.True(t, errors.As(ev.err, &verr), "a certificate verification error: %v", ev.err)
	cl := waitFor(t, bad.closes, "bad client close event")
	assert.True(t, cl.hadError, "hadError")
	assert.Equal(t, actors.OFFLINE, cl.status, "status at the close event")
	expectNothing(t, bad.connect, 0, "connect event of the refused client")
	// The server sees the aborted handshake on that connection.
	expectConnFailure(t, s, func(err error) {
		assert.True(t, errors.Is(err, actors.ErrHandshake), "errors.Is(%v, actors.ErrHandshake)", err)
	})

	stillHealthy(t, s, c, sc)
}

// A TCP connection that never starts its handshake is dropped after
// Limits.HandshakeTimeout with a handshake error.
func TestBadInput_HandshakeTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	e := newEnv(t)
	s := e.startServer(func(o *actors.ServerOptions) { o.Limits.HandshakeTimeout = timeout })
	port := s.listening()
	c, sc := e.healthy(s, port)

	start := time.Now()
	raw, err := net.DialTimeout("tcp", s.addr(), wait)
	require.NoError(t, err)
	t.Cleanup(func() { _ = raw.Close() })
	require.NoError(t, raw.SetDeadline(time.Now().Add(wait)))

	bad := expectConnFailure(t, s, func(err error) {
		elapsed := time.Since(start)
		assert.True(t, errors.Is(err, actors.ErrHandshake), "errors.Is(%v, actors.ErrHandshake)", err)
		assert.True(t, errors.Is(err, tlsio.ErrHandshakeTimeout), "errors.Is(%v, tlsio.ErrHandshakeTimeout)", err)
		assert.GreaterOrEqual(t, elapsed, timeout, "dropped before the handshake timeout")
		assert.Less(t, elapsed, 2*time.Second, "dropped long after the handshake timeout")
	})
	assert.NotSame(t, sc, bad)
	_, err = readUntilEnd(raw)
	assert.False(t, errors.Is(err, errTimeout), "the silent connection was not closed")

	stillHealthy(t, s, c, sc)
}

// Many bad connections at once do not crash the process or disturb the
// healthy client (the original process dies at the first one).
func TestBadInput_InvalidEscapesDoNotCrashTheProcess(t *testing.T) {
	const bad = 20
	e := newEnv(t)
	s := e.startServer(nil)
	port := s.listening()
	c, sc := e.healthy(s, port)
	cfg := e.clientTLSConfig()

	var wg sync.WaitGroup
	errs := make(chan error, bad)
	for i := 0; i < bad; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := &net.Dialer{Timeout: wait}
			raw, err := tls.DialWithDialer(d, "tcp", s.addr(), cfg)
			if err != nil {
				errs <- err
				return
			}
			defer raw.Close()
			_ = raw.SetDeadline(time.Now().Add(wait))
			if _, err := raw.Write([]byte("fine\nthen \\q bad\n")); err != nil {
				errs <- err
				return
			}
			if _, err := readUntilEnd(raw); errors.Is(err, errTimeout) {
				errs <- err
			}
		}()
	}
	// Events of different connections interleave: match them by connection.
	errored := map[*actors.Connection]bool{}
	for i := 0; i < bad; i++ {
		ce := waitFor(t, s.connErrs, "server connection error event")
		assert.True(t, errors.Is(ce.err, wire.ErrInvalidEscape), "errors.Is(%v, wire.ErrInvalidEscape)", ce.err)
		assert.False(t, errored[ce.conn], "two error events for one connection")
		errored[ce.conn] = true
	}
	for i := 0; i < bad; i++ {
		cc := waitFor(t, s.connCloses, "server connection close event")
		assert.True(t, errored[cc.conn], "close of a connection without its error event")
		assert.True(t, cc.hadError)
		delete(errored, cc.conn)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("bad client: %v", err)
	}
	stillHealthy(t, s, c, sc)
}

// An invalid escape from the server is an error on the client's connection,
// then close(true) (the original client would crash).
func TestBadInput_InvalidEscapeFromServerClosesClient(t *testing.T) {
	e := newEnv(t)
	cfg, err := tlsio.ServerConfig(e.certs.ServerOptions())
	require.NoError(t, err)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(wait))
		if _, err := conn.Write([]byte("hi\n\\x\n")); err != nil {
			return
		}
		_, _ = readUntilEnd(conn)
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
	})

	c := e.startClient(ln.Addr().(*net.TCPAddr).Port, nil)
	c.connected()
	got := waitFor(t, c.tokens, "token before the bad frame")
	assert.Equal(t, []byte("hi"), got.data)
	ev := waitFor(t, c.errs, "client error event")
	assert.True(t, errors.Is(ev.err, wire.ErrInvalidEscape), "errors.Is(%v, wire.ErrInvalidEscape)", ev.err)
	assert.True(t, errors.Is(ev.err, actors.ErrProtocol), "errors.Is(%v, actors.ErrProtocol)", ev.err)
	cl := waitFor(t, c.closes, "client close event")
	assert.True(t, cl.hadError)
	assert.Equal(t, actors.OFFLINE, cl.status)
	assert.False(t, c.cli.Send([]byte("x")))
	waitClosed(t, done, "fake server to see the close")
}

// More authenticated connections than MaxConnections: the extra one is
// refused, once its handshake is done, with an error event on it; the others
// keep working.
func TestBadInput_TooManyConnections(t *testing.T) {
	e := newEnv(t)
	s := e.startServer(func(o *actors.ServerOptions) { o.MaxConnections = 1 })
	port := s.listening()
	c, sc := e.healthy(s, port)

	raw := rawTLS(t, s.addr(), e.clientTLSConfig())
	expectConnFailure(t, s, func(err error) {
		assert.True(t, errors.Is(err, actors.ErrTooManyConnections), "errors.Is(%v, actors.ErrTooManyConnections)", err)
	})
	_, err := readUntilEnd(raw)
	assert.False(t, errors.Is(err, errTimeout), "the extra connection was not closed")

	stillHealthy(t, s, c, sc)
}

// A peer that stops reading while the server sends to it without waiting for
// room: past the high-water mark Send keeps taking tokens (the connection
// only stops reading); it turns false at the hard cap, Limits.MaxQueue, and
// that connection fails as a slow consumer (ErrSlowConsumer wrapping
// ErrQueueFull, code slow_consumer).
func TestBadInput_PeerThatStopsReading(t *testing.T) {
	const hwm = 256 << 10
	e := newEnv(t)
	refused := make(chan int, 1)
	s := e.startServer(func(o *actors.ServerOptions) {
		o.Limits.HighWaterMark = hwm
		o.Limits.MaxQueue = 4 * hwm
		echo := o.OnToken
		o.OnToken = func(token []byte, c *actors.Connection) {
			if string(token) != "flood" {
				echo(token, c)
				return
			}
			chunk := bytes.Repeat([]byte("f"), 64<<10)
			for i := 0; i < 4096; i++ { // at most 256 MiB; the queue fills long before
				if !c.Send(chunk) {
					put(refused, i)
					return
				}
			}
		}
	})
	port := s.listening()
	c, sc := e.healthy(s, port)

	raw := rawTLS(t, s.addr(), e.clientTLSConfig())
	_, err := raw.Write([]byte("flood\n")) // and never read
	require.NoError(t, err)
	n := waitFor(t, refused, "Send to refuse at the hard cap")
	assert.Less(t, n, 4096)
	// Refused once the unwritten part of the queue would pass the cap: all
	// that was taken is at least the cap (less the token that did not fit).
	assert.GreaterOrEqual(t, n*(64<<10), 4*hwm-(64<<10),
		"Send refused after %d tokens of 64 KiB, before the hard cap (high-water mark %d)", n, hwm)
	expectConnFailure(t, s, func(err error) {
		assert.True(t, errors.Is(err, actors.ErrSlowConsumer), "errors.Is(%v, actors.ErrSlowConsumer)", err)
		assert.True(t, errors.Is(err, actors.ErrQueueFull), "errors.Is(%v, actors.ErrQueueFull)", err)
		assert.Equal(t, actors.CodeSlowConsumer, actors.ErrorCode(err))
	})

	stillHealthy(t, s, c, sc)
}

// A callback that panics is recovered and reported as an error event on its
// connection (ErrHandlerPanic); as the design says, it takes down neither the
// connection nor the server (the original process would die).
func TestBadInput_PanickingHandlerTakesNothingDown(t *testing.T) {
	e := newEnv(t)
	s := e.startServer(func(o *actors.ServerOptions) {
		echo := o.OnToken
		o.OnToken = func(token []byte, c *actors.Connection) {
			if string(token) == "boom" {
				panic("handler exploded")
			}
			echo(token, c)
		}
	})
	port := s.listening()
	c, sc := e.healthy(s, port)

	bad := e.startClient(port, nil)
	bad.connected()
	bsc := waitFor(t, s.conns, "server connection of the panicking token's client")
	require.True(t, bad.cli.Send([]byte("boom")))
	ce := waitFor(t, s.connErrs, "server connection error event")
	assert.Same(t, bsc, ce.conn)
	assert.True(t, errors.Is(ce.err, actors.ErrHandlerPanic), "errors.Is(%v, actors.ErrHandlerPanic)", ce.err)
	assert.Contains(t, ce.err.Error(), "handler exploded")
	assert.Equal(t, actors.CodeHandlerPanic, actors.ErrorCode(ce.err))

	// The connection lives on and the next token is handled.
	bad.roundTrip([]byte("after the panic"))
	assert.False(t, bsc.IsDead())
	expectNothing(t, s.connCloses, 50*time.Millisecond, "connection close")
	assert.Equal(t, actors.ONLINE, s.srv.Status())
	c.roundTrip([]byte("healthy after the panic"))
	assert.ElementsMatch(t, []*actors.Connection{sc, bsc}, s.srv.Connections())
}
