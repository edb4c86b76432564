package actors

import (
	"context"
	"crypto/tls"
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
		cause := causeAfter(t, func(c *tls.Conn) { _ = c.Close() }) // close_notify, no remoteClose
		if cause != "connection closed by the server" {
			t.Errorf("cause %q, want %q", cause, "connection closed by the server")
		}
	})
	t.Run("connection reset", func(t *testing.T) {
		cause := causeAfter(t, func(c *tls.Conn) {
			raw := c.NetConn().(*net.TCPConn)
			_ = raw.SetLinger(0)
			_ = raw.Close() // no close_notify: a reset
		})
		if !strings.Contains(cause, "connection reset") {
			t.Errorf("cause %q, want the connection's error (reset)", cause)
		}
	})
}

// causeAfter connects a token/1 client with reconnection to a raw TLS
// server that ends the connection with end once it is up, and returns the
// cause of the client's first OnReconnecting.
func causeAfter(t *testing.T, end func(*tls.Conn)) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", serverTLS(t))
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
		_ = c.(*tls.Conn).HandshakeContext(context.Background())
		<-up
		end(c.(*tls.Conn))
	}()
	causes, connected := make(chan string, 8), make(chan struct{}, 1)
	cli, err := NewClient(ClientOptions{
		Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, TLS: testCerts(t).ClientOptions(),
		Protocols:      []string{wire.ProtocolToken1},
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
