package actors

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strconv"
	"testing"
	"time"
)

// A connection closed with Close ends its side and then waits for the
// peer's end: a token the peer sends in between still reaches the handler,
// and the close is clean.
func TestTokenAfterCloseBeforePeerEnd(t *testing.T) {
	conns, toks, closes := make(chan *Connection, 1), make(chan string, 4), make(chan bool, 2)
	listening := make(chan struct{}, 1)
	srv, err := NewServer(ServerOptions{
		Host: "127.0.0.1", TLS: testCerts(t).ServerOptions(),
		OnConnect:         func() { put(t, listening, struct{}{}) },
		OnConnection:      func(c *Connection) { put(t, conns, c) },
		OnToken:           func(tok []byte, _ *Connection) { put(t, toks, string(tok)) },
		OnConnectionClose: func(_ *Connection, had bool) { put(t, closes, had) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer shutdownWithin(t, "server", srv.Shutdown)
	recv(t, listening, "listening")
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(serverPort(srv)))
	raw, err := tls.DialWithDialer(&net.Dialer{Timeout: deadline}, "tcp", addr, clientTLS(t))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	recv(t, conns, "the connection").Close()
	_ = raw.SetReadDeadline(time.Now().Add(deadline))
	if n, err := raw.Read(make([]byte, 64)); !errors.Is(err, io.EOF) {
		t.Fatalf("read %d bytes, %v; want the server's end", n, err)
	}
	if _, err := raw.Write([]byte("late\n")); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, toks, "the late token"); got != "late" {
		t.Errorf("token %q, want %q", got, "late")
	}
	_ = raw.CloseWrite()
	if recv(t, closes, "the close") {
		t.Error("close with hadError")
	}
}
