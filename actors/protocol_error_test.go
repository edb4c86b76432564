package actors

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/wire"
)

// Tokens read before a protocol error (here in the same read as an invalid
// escape) reach the handler, and the replies it sends while it handles them
// are written before the connection closes: error event, then close with
// hadError. Nothing after the bad frame is read.

// echoReplies reads conn until it ends and returns what it read.
func echoReplies(t *testing.T, conn net.Conn) string {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(deadline))
	got, err := io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("the connection did not end within %v (read %q)", deadline, got)
	}
	return string(got)
}

func TestRepliesBeforeInvalidEscapeAreWrittenOverPipe(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	errs, closes := make(chan error, 2), make(chan bool, 2)
	_, err := NewConnection(a, ConnectionOptions{
		OnToken: func(tok []byte, c *Connection) {
			if !c.Send(append([]byte("re:"), tok...)) {
				t.Errorf("Send of the reply to %q refused", tok)
			}
		},
		OnError: func(err error) { put(t, errs, err) },
		OnClose: func(had bool) { put(t, closes, had) },
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = b.Write([]byte("a\nb\n\\x\nc\n")) }()
	if got, want := echoReplies(t, b), "re:a\nre:b\n"; got != want {
		t.Errorf("the peer read %q, want %q", got, want)
	}
	if err := recv(t, errs, "the error"); !errors.Is(err, wire.ErrInvalidEscape) {
		t.Errorf("error %v, want wire.ErrInvalidEscape", err)
	}
	if !recv(t, closes, "the close") {
		t.Error("close without hadError")
	}
}

// The same on a server, over TLS, with a raw client: the replies come, then
// the server's end of the stream.
func TestRepliesBeforeInvalidEscapeAreWrittenByServer(t *testing.T) {
	errs, closes := make(chan error, 2), make(chan bool, 2)
	listening := make(chan struct{}, 1)
	srv, err := NewServer(ServerOptions{
		Host: "127.0.0.1", TLS: testCerts(t).ServerOptions(),
		OnConnect: func() { put(t, listening, struct{}{}) },
		OnToken: func(tok []byte, c *Connection) {
			if !c.Send(append([]byte("re:"), tok...)) {
				t.Errorf("Send of the reply to %q refused", tok)
			}
		},
		OnConnectionError: func(_ *Connection, err error) { put(t, errs, err) },
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
	if _, err := raw.Write([]byte("a\nb\n\\x\nc\n")); err != nil {
		t.Fatal(err)
	}
	if got, want := echoReplies(t, raw), "re:a\nre:b\n"; got != want {
		t.Errorf("the client read %q, want %q", got, want)
	}
	raw.Close()
	if err := recv(t, errs, "the error"); !errors.Is(err, wire.ErrInvalidEscape) {
		t.Errorf("error %v, want wire.ErrInvalidEscape", err)
	}
	if !recv(t, closes, "the close") {
		t.Error("close without hadError")
	}
}

// Bad input that comes while the connection closes (Close drained it and
// ended our side; the peer's end is awaited) is still an error: an error
// event, and a close with hadError.
func TestInvalidEscapeWhileClosing(t *testing.T) {
	raw, conn, errs, closes := rawClientOf(t, ServerOptions{})
	conn.Close()
	// The server's end of the stream: it drained, and waits for ours.
	_ = raw.SetReadDeadline(time.Now().Add(deadline))
	if n, err := raw.Read(make([]byte, 64)); !errors.Is(err, io.EOF) {
		t.Fatalf("read %d bytes, %v; want the server's end", n, err)
	}
	if _, err := raw.Write([]byte("\\x\n")); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, errs, "the error"); !errors.Is(err, wire.ErrInvalidEscape) {
		t.Errorf("error %v, want wire.ErrInvalidEscape", err)
	}
	if !recv(t, closes, "the close") {
		t.Error("close without hadError")
	}
}

// After bad input the connection stops reading at once: it closes once the
// replies are written, without waiting for the peer's end (the peer that
// sent a bad frame may never close), far within a long CloseTimeout.
func TestInvalidEscapeClosesWithoutThePeersEnd(t *testing.T) {
	raw, _, errs, closes := rawClientOf(t, ServerOptions{Limits: Limits{CloseTimeout: time.Minute}})
	if _, err := raw.Write([]byte("\\x\n")); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, errs, "the error"); !errors.Is(err, wire.ErrInvalidEscape) {
		t.Errorf("error %v, want wire.ErrInvalidEscape", err)
	}
	if !recv(t, closes, "the close, the peer still connected") {
		t.Error("close without hadError")
	}
}

// A peer that ends its stream inside a frame (a token with no newline, then
// its end) loses that token: an error event that says so, and the
// connection closes, though its reader had ended before the error was
// known, with nothing left to read that would close it.
func TestEndOfStreamInsideAFrame(t *testing.T) {
	raw, _, errs, closes := rawClientOf(t, ServerOptions{Limits: Limits{CloseTimeout: time.Minute}})
	if _, err := raw.Write([]byte("no newline")); err != nil {
		t.Fatal(err)
	}
	if err := raw.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	err := recv(t, errs, "the error")
	if !errors.Is(err, ErrProtocol) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("error %v, want ErrProtocol and io.ErrUnexpectedEOF", err)
	}
	if !recv(t, closes, "the close") {
		t.Error("close without hadError")
	}
	_ = raw.SetReadDeadline(time.Now().Add(deadline))
	if n, err := raw.Read(make([]byte, 64)); !errors.Is(err, io.EOF) {
		t.Errorf("read %d bytes, %v; want the server's end", n, err)
	}
}

// rawClientOf starts a server with opts (its OnConnection, OnConnectionError
// and OnConnectionClose are taken) and connects a raw TLS client to it,
// speaking token/1 (no ALPN). It returns the client, the server's
// connection, and its error and close events.
func rawClientOf(t *testing.T, opts ServerOptions) (*tls.Conn, *Connection, <-chan error, <-chan bool) {
	t.Helper()
	conns, errs, closes := make(chan *Connection, 1), make(chan error, 2), make(chan bool, 2)
	opts.OnConnection = func(c *Connection) { put(t, conns, c) }
	opts.OnConnectionError = func(_ *Connection, err error) { put(t, errs, err) }
	opts.OnConnectionClose = func(_ *Connection, had bool) { put(t, closes, had) }
	srv := listeningServer(t, opts)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(serverPort(srv)))
	raw, err := tls.DialWithDialer(&net.Dialer{Timeout: deadline}, "tcp", addr, clientTLS(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return raw, recv(t, conns, "the connection"), errs, closes
}
