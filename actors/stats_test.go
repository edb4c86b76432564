package actors

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/tokenserver/tokenserver/tlsio"
	"github.com/tokenserver/tokenserver/wire"
)

// eventually waits until cond holds, checking every few milliseconds, and
// fails the test with what and the last stats after the deadline.
func eventually(t *testing.T, what string, cond func() bool, last func() any) {
	t.Helper()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	end := time.After(deadline)
	for !cond() {
		select {
		case <-tick.C:
		case <-end:
			t.Fatalf("timed out waiting for %s; last: %+v", what, last())
		}
	}
}

// statsRig is an echo server on loopback and what its tests need.
type statsRig struct {
	t      *testing.T
	certs  *tlsio.DevCerts
	srv    *Server
	port   int
	closes chan bool // the server's connection closes
}

func newStatsRig(t *testing.T, mod func(*ServerOptions)) *statsRig {
	t.Helper()
	certs, err := tlsio.GenerateDevCerts()
	require.NoError(t, err)
	r := &statsRig{t: t, certs: certs, closes: make(chan bool, 16)}
	up := make(chan struct{}, 1)
	// token/1, whose bytes on the wire the tests compute (encodedLen);
	// token/2's counts have a test of their own.
	opts := ServerOptions{
		Host: "127.0.0.1", TLS: certs.ServerOptions(), Protocols: []string{ProtocolToken1},
		OnConnect:         func() { up <- struct{}{} },
		OnToken:           func(tok []byte, c *Connection) { c.Send(tok) },
		OnConnectionClose: func(_ *Connection, had bool) { r.closes <- had },
	}
	if mod != nil {
		mod(&opts)
	}
	r.srv, err = NewServer(opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, r.srv.Shutdown(context.Background())) })
	recv(t, up, "listening")
	r.port = r.srv.Addr().(*net.TCPAddr).Port
	return r
}

func (r *statsRig) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)) }

// client connects an echo client whose replies reach the returned channel.
func (r *statsRig) client(mod func(*ClientOptions)) (*Client, chan []byte) {
	r.t.Helper()
	replies, up := make(chan []byte, 64), make(chan struct{}, 4)
	opts := ClientOptions{
		Host: "127.0.0.1", Port: r.port, TLS: r.certs.ClientOptions(),
		OnConnect: func() { up <- struct{}{} },
		OnToken:   func(tok []byte, _ *Connection) { replies <- tok },
	}
	if mod != nil {
		mod(&opts)
	}
	c, err := NewClient(opts)
	require.NoError(r.t, err)
	r.t.Cleanup(func() { require.NoError(r.t, c.Shutdown(context.Background())) })
	recv(r.t, up, "client connected")
	return c, replies
}

// raw dials the server with crypto/tls alone (with the client certificate
// when withCert).
func (r *statsRig) raw(withCert bool) *tls.Conn {
	r.t.Helper()
	opts := r.certs.ClientOptions()
	if !withCert {
		opts.Key, opts.Cert = nil, nil
	}
	cfg, err := tlsio.ClientConfig(opts)
	require.NoError(r.t, err)
	c, err := tlsio.Dial(context.Background(), r.addr(), cfg, tlsio.DialConfig{})
	require.NoError(r.t, err)
	r.t.Cleanup(func() { _ = c.Close() })
	return c
}

func encodedLen(tokens ...[]byte) int64 {
	n := 0
	for _, t := range tokens {
		n += len(wire.AppendToken(nil, t))
	}
	return int64(n)
}

// Tokens and bytes both ways, connections opened and closed cleanly; the
// remoteClose frame of the server's close is bytes, not a token.
func TestStatsCountTrafficAndCleanCloses(t *testing.T) {
	r := newStatsRig(t, nil)
	cli, replies := r.client(func(o *ClientOptions) {
		o.OnRemoteClose = func(c *Connection) { c.Close() }
	})
	tokens := [][]byte{[]byte("a"), []byte("line\nbreak"), []byte(`back\slash`), {}, bytes.Repeat([]byte("x"), 100<<10)}
	for _, tok := range tokens {
		require.True(t, cli.Send(tok))
		require.Equal(t, tok, recv(t, replies, "echo"))
	}
	n, size := int64(len(tokens)), encodedLen(tokens...)

	srvWant := func(st Stats) bool {
		return st.Accepted == 1 && st.Opened == 1 && st.Open == 1 &&
			st.TokensReceived == n && st.BytesReceived == size && st.TokensSent == n && st.BytesSent == size
	}
	eventually(t, "the server's counts", func() bool { return srvWant(r.srv.Stats()) }, func() any { return r.srv.Stats() })
	eventually(t, "the client's writes", func() bool { return cli.Stats().TokensSent == n }, func() any { return cli.Stats() })
	st := cli.Stats()
	require.Equal(t, Stats{ConnectAttempts: 1, Opened: 1, Open: 1, TokensSent: n, BytesSent: size,
		TokensReceived: n, BytesReceived: size}, st)

	// The server closes: remoteClose (2 bytes, no token), the client closes
	// its side, both ends are clean.
	require.True(t, r.srv.Close())
	require.False(t, recv(t, r.closes, "the server's connection closed"))
	eventually(t, "the client's close", func() bool { return cli.Stats().ClosedClean == 1 }, func() any { return cli.Stats() })
	st = r.srv.Stats()
	require.Equal(t, int64(0), st.Open)
	require.Equal(t, int64(1), st.ClosedClean)
	require.Nil(t, st.ClosedError)
	require.Equal(t, n, st.TokensSent, "remoteClose is not a token")
	require.Equal(t, size+2, st.BytesSent, "remoteClose is 2 bytes")
	cst := cli.Stats()
	require.Equal(t, n, cst.TokensReceived, "remoteClose is not a token")
	require.Equal(t, size+2, cst.BytesReceived)
	require.Equal(t, int64(0), cst.Open)
}

// Refusals, handshake failures by cause, a bad escape and a handler panic,
// each counted once, on a server that keeps running.
func TestStatsServerRefusalsFailuresAndPanics(t *testing.T) {
	r := newStatsRig(t, func(o *ServerOptions) {
		o.MaxConnections = 2
		o.OnToken = func(tok []byte, c *Connection) {
			if string(tok) == "boom" {
				panic("boom")
			}
			c.Send(tok)
		}
	})
	r.client(nil)

	// A client without a certificate: the server's handshake fails.
	nocert := r.raw(false)
	_, _ = nocert.Read(make([]byte, 1)) // the server's alert, or its close
	eventually(t, "a certificate failure", func() bool {
		return r.srv.Stats().HandshakeFailures[CauseCertificate] == 1
	}, func() any { return r.srv.Stats() })

	// Plain text on a TLS port.
	plain, err := net.Dial("tcp", r.addr())
	require.NoError(t, err)
	defer plain.Close()
	_, err = plain.Write([]byte("hello, plain text\n\n\n\n\n\n\n\n"))
	require.NoError(t, err)
	eventually(t, "a not-TLS failure", func() bool {
		return r.srv.Stats().HandshakeFailures[CauseNotTLS] == 1
	}, func() any { return r.srv.Stats() })

	// A handler panic: reported, the connection goes on.
	bad := r.raw(true)
	_, err = bad.Write([]byte("boom\nok\n"))
	require.NoError(t, err)
	require.Equal(t, []byte("ok\n"), readExactly(t, bad, 3))

	// MaxConnections is 2 and two are open: a third is refused.
	third := r.raw(true)
	_, _ = third.Read(make([]byte, 1))
	eventually(t, "the refusal", func() bool { return r.srv.Stats().RefusedMaxConnections == 1 },
		func() any { return r.srv.Stats() })

	// Then a bad escape: that connection fails, once.
	_, err = bad.Write([]byte("fine\n\\x\n"))
	require.NoError(t, err)
	eventually(t, "the bad connection's close", func() bool { return r.srv.Stats().Open == 1 },
		func() any { return r.srv.Stats() })

	st := r.srv.Stats()
	require.Equal(t, int64(5), st.Accepted)
	require.Equal(t, map[string]int64{CauseCertificate: 1, CauseNotTLS: 1}, st.HandshakeFailures)
	require.Equal(t, int64(2), st.Opened)
	require.Equal(t, int64(1), st.Open)
	require.Equal(t, map[string]int64{CodeInvalidEscape: 1}, st.ClosedError)
	require.Equal(t, int64(1), st.HandlerPanics)
	require.Equal(t, int64(3), st.TokensReceived, "boom, ok, fine")
	require.Equal(t, int64(0), st.RefusedMaxPending)
}

// A peer that sends and never reads: its connection stops reading (a gauge),
// the queue grows (a gauge), then it is cut as a slow consumer.
func TestStatsPausedQueueAndSlowConsumer(t *testing.T) {
	const hwm = 64 << 10
	r := newStatsRig(t, func(o *ServerOptions) {
		o.Limits = Limits{HighWaterMark: hwm, WriteTimeout: 3 * time.Second}
	})
	peer := r.raw(true)
	go func() {
		chunk := bytes.Repeat(wire.AppendToken(nil, bytes.Repeat([]byte("s"), 1000)), 64)
		for {
			if _, err := peer.Write(chunk); err != nil {
				return // cut
			}
		}
	}()
	eventually(t, "reading paused", func() bool {
		st := r.srv.Stats()
		return st.ReadPaused == 1 && st.QueuedBytes > hwm
	}, func() any { return r.srv.Stats() })
	require.True(t, recv(t, r.closes, "the slow consumer's close"))
	st := r.srv.Stats()
	require.Equal(t, int64(1), st.SlowConsumerCuts)
	require.Equal(t, map[string]int64{CodeSlowConsumer: 1}, st.ClosedError)
	require.Equal(t, int64(0), st.ReadPaused)
	require.Equal(t, int64(0), st.QueuedBytes)
	require.Equal(t, int64(0), st.Open)
	require.Positive(t, st.Dropped[CodeNotSent]+st.Dropped[CodeMaybeSent], "the echoes it never read")
	require.Equal(t, st.TokensReceived, st.TokensSent+st.Dropped[CodeNotSent]+st.Dropped[CodeMaybeSent],
		"every echo is written or dropped")
}

// A reconnecting client: the server closes its connection, the client
// connects again; then the server is gone, the attempts fail, tokens wait in
// the buffer and are dropped on Close.
func TestStatsClientReconnectsAndDrops(t *testing.T) {
	r := newStatsRig(t, nil)
	reconnect := DefaultReconnect()
	reconnect.Policy.Initial, reconnect.Policy.Max, reconnect.Policy.Jitter = 10*time.Millisecond, 20*time.Millisecond, 0
	reconnect.Policy.MaxRetries, reconnect.Policy.Unlimited = 0, true
	connects := make(chan struct{}, 4)
	cli, replies := r.client(func(o *ClientOptions) {
		o.Reconnect = reconnect
		on := o.OnConnect
		o.OnConnect = func() { on(); connects <- struct{}{} }
	})
	recv(t, connects, "first connect")
	require.True(t, cli.Send([]byte("one")))
	recv(t, replies, "echo")

	r.srv.Connections()[0].Close()
	recv(t, connects, "reconnected")
	require.True(t, cli.Send([]byte("two")))
	recv(t, replies, "echo")
	// The echo may come back before the client's writer reports its write.
	eventually(t, "the client's writes", func() bool { return cli.Stats().TokensSent == 2 }, func() any { return cli.Stats() })
	st := cli.Stats()
	require.Equal(t, int64(2), st.ConnectAttempts)
	require.Equal(t, int64(1), st.Reconnects)
	require.Equal(t, int64(2), st.Opened)
	require.Equal(t, int64(1), st.Open)
	require.Equal(t, int64(1), st.ClosedClean)
	require.Equal(t, int64(2), st.TokensSent)
	require.Equal(t, int64(2), st.TokensReceived)

	require.NoError(t, r.srv.Shutdown(context.Background()))
	eventually(t, "refused connects", func() bool { return cli.Stats().ConnectFailures[CauseRefused] >= 2 },
		func() any { return cli.Stats() })
	require.True(t, cli.Send([]byte("waits")))
	require.Equal(t, int64(5), cli.Stats().BufferedBytes)
	require.True(t, cli.Close())
	eventually(t, "the drop", func() bool { return cli.Stats().Dropped[CodeClientClosed] == 1 },
		func() any { return cli.Stats() })
	st = cli.Stats()
	require.Equal(t, int64(0), st.BufferedBytes)
	require.Equal(t, int64(0), st.Open)
	require.Equal(t, st.ConnectAttempts, st.Opened+st.ConnectFailures[CauseRefused], "%+v", st)
	require.Equal(t, int64(0), st.GaveUp)
}

func readExactly(t *testing.T, c net.Conn, n int) []byte {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(deadline)))
	buf := make([]byte, n)
	_, err := io.ReadFull(c, buf)
	require.NoError(t, err)
	return buf
}

// Every code of ErrorCode has its counter.
func TestStatsKnowEveryCode(t *testing.T) {
	for _, c := range codeOf {
		require.Equal(t, c.code, codeNames[codeIndex(c.code)])
	}
	require.Equal(t, numCodes-1, codeIndex(CodeOther))
	require.Equal(t, numCodes-1, codeIndex("no such code"))
}

func TestCauseOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("%w: %w", ErrHandshake, tlsio.ErrHandshakeTimeout), CauseTimeout},
		{fmt.Errorf("dial: %w", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}), CauseRefused},
		{fmt.Errorf("%w: %w", ErrHandshake, errNoClientCertificate), CauseCertificate},
		{fmt.Errorf("%w: %w", ErrDial, &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), CauseCertificate},
		{fmt.Errorf("%w: tls: %w", ErrHandshake, errors.New("no cipher suite supported by both client and server")), CauseTLS},
		{fmt.Errorf("%w: %w", ErrDial, &net.OpError{Op: "dial", Err: errors.New("no route")}), CauseOther},
		{fmt.Errorf("%w: %w", ErrDial, &net.DNSError{Err: "no such host", Name: "x"}), CauseOther},
		{errors.New("tls: some text that says certificate"), CauseOther},
		// The certificate alerts (RFC 8446 6.2): bad_certificate (42) to
		// certificate_unknown (46), unknown_ca (48), certificate_required
		// (116); their neighbours are not.
		{fmt.Errorf("x: %w", tls.AlertError(41)), CauseTLS},
		{fmt.Errorf("x: %w", tls.AlertError(42)), CauseCertificate},
		{fmt.Errorf("x: %w", tls.AlertError(46)), CauseCertificate},
		{fmt.Errorf("x: %w", tls.AlertError(47)), CauseTLS},
		{fmt.Errorf("x: %w", tls.AlertError(48)), CauseCertificate},
		{fmt.Errorf("x: %w", tls.AlertError(49)), CauseTLS},
		{fmt.Errorf("x: %w", tls.AlertError(115)), CauseTLS},
		{fmt.Errorf("x: %w", tls.AlertError(116)), CauseCertificate},
		{fmt.Errorf("x: %w", tls.AlertError(70)), CauseTLS},
		{fmt.Errorf("x: %w", tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}), CauseNotTLS},
		{fmt.Errorf("handshake: %w", io.EOF), CauseClosed},
		{errors.New("something else"), CauseOther},
	} {
		require.Equal(t, tc.want, causeNames[causeOf(tc.err)], "%v", tc.err)
	}
}

// The hooks of the hot path allocate nothing, with metrics off and on; the
// delivery histogram records with its prebuilt attributes.
func TestStatsHooksDoNotAllocate(t *testing.T) {
	reader := metric.NewManualReader()
	provider := metric.NewMeterProvider(metric.WithReader(reader))
	defer func() { require.NoError(t, provider.Shutdown(context.Background())) }()
	on := newStats(roleServer, func() gaugeValues { return gaugeValues{} })
	require.NoError(t, on.startMetrics(Runtime{MeterProvider: provider}))
	defer on.stopMetrics()
	off := newStats(roleServer, func() gaugeValues { return gaugeValues{} })

	for name, s := range map[string]*stats{"off": off, "on": on} {
		allocs := testing.AllocsPerRun(1000, func() {
			s.read(6, 3) // "a\nb\nc\n": 3 tokens in 6 bytes
			at := s.stamp()
			s.delivered(at)
			s.wrote(6, 3)
		})
		require.Zero(t, allocs, name)
	}
	require.Equal(t, int64(3*1001), on.in.tokens.Load())
	require.Equal(t, int64(3*1001), on.out.tokens.Load())

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	var hist metricdata.Histogram[float64]
	for _, m := range rm.ScopeMetrics[0].Metrics {
		if m.Name == "tokenserver.delivery.duration" {
			hist = m.Data.(metricdata.Histogram[float64])
		}
	}
	require.Len(t, hist.DataPoints, 1)
	require.Equal(t, uint64(1001), hist.DataPoints[0].Count)
}
