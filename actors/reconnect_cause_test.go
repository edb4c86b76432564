package actors

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/wire"
)

// OnReconnecting says why the client connects again: the server's reason
// when it closed with one (remoteClose), "connection closed by the server"
// when it closed without a word, the connection's error when it failed.
func TestReconnectingCause(t *testing.T) {
	t.Run("remote close", func(t *testing.T) {
		srv := listeningServer(t, ServerOptions{})
		causes := make(chan string, 8)
		connectedClient(t, srv, ClientOptions{
			Reconnect:      &ReconnectOptions{Policy: fastRetry(10*time.Millisecond, 50*time.Millisecond)},
			OnReconnecting: func(_ int, _ time.Duration, cause string) { put(t, causes, cause) },
		})
		shutdownWithin(t, "server", srv.Shutdown)
		if cause := recv(t, causes, "reconnecting"); cause != "remote close" {
			t.Errorf("cause %q, want %q", cause, "remote close")
		}
	})
	t.Run("closed without a word", func(t *testing.T) {
		cause := causeAfter(t, wire.ProtocolToken1, func(c *tls.Conn) { _ = c.Close() }) // close_notify, no remoteClose
		if cause != "connection closed by the server" {
			t.Errorf("cause %q, want %q", cause, "connection closed by the server")
		}
	})
	reset := func(c *tls.Conn) {
		raw := c.NetConn().(*net.TCPConn)
		_ = raw.SetLinger(0)
		_ = raw.Close() // no close_notify: a reset
	}
	t.Run("connection reset", func(t *testing.T) {
		if cause := causeAfter(t, wire.ProtocolToken1, reset); !strings.Contains(cause, "connection reset") {
			t.Errorf("cause %q, want the connection's error (reset)", cause)
		}
	})
	// token/2: the session goes on over the next connection; the cause is
	// still the socket's error, an end of stream without END an unexpected
	// one.
	t.Run("token/2 reset", func(t *testing.T) {
		if cause := causeAfter(t, wire.ProtocolToken2, reset); !strings.Contains(cause, "connection reset") {
			t.Errorf("cause %q, want the connection's error (reset)", cause)
		}
	})
	t.Run("token/2 end of stream", func(t *testing.T) {
		cause := causeAfter(t, wire.ProtocolToken2, func(c *tls.Conn) { _ = c.Close() })
		if !strings.Contains(cause, io.ErrUnexpectedEOF.Error()) {
			t.Errorf("cause %q, want %v", cause, io.ErrUnexpectedEOF)
		}
	})
}

// causeAfter connects a client speaking protocol, with reconnection, to a
// raw TLS server that ends the connection with end once it is up, and
// returns the cause of the client's first OnReconnecting.
func causeAfter(t *testing.T, protocol string, end func(*tls.Conn)) string {
	t.Helper()
	cfg := serverTLS(t).Clone()
	cfg.NextProtos = []string{protocol}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	up := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(up) }) }
	defer release() // a test that failed before does not leave it waiting
	go func() {     // one connection
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_ = c.SetDeadline(time.Now().Add(deadline))
		_ = c.(*tls.Conn).HandshakeContext(context.Background())
		if protocol == wire.ProtocolToken2 { // a new session
			if _, err := wire.ReadHello(c); err == nil {
				_, _ = c.Write(wire.AppendWelcome(nil, wire.Welcome{Status: wire.SessionNew}))
			}
		}
		<-up
		end(c.(*tls.Conn))
	}()
	causes, connected := make(chan string, 8), make(chan struct{}, 1)
	cli, err := NewClient(ClientOptions{
		Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, TLS: testCerts(t).ClientOptions(),
		Protocols:      []string{protocol},
		Reconnect:      &ReconnectOptions{Policy: fastRetry(10*time.Millisecond, 50*time.Millisecond)},
		OnConnect:      func() { put(t, connected, struct{}{}) },
		OnReconnecting: func(_ int, _ time.Duration, cause string) { put(t, causes, cause) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer shutdownWithin(t, "client", cli.Shutdown)
	recv(t, connected, "connected")
	release()
	return recv(t, causes, "reconnecting")
}
