package delivery

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
)

// listening starts a server with opts on 127.0.0.1 and development
// certificates, waits until it listens, and shuts it down when the test
// ends. It returns the server's address and the certificates (for raw
// clients: dialToken2).
func listening(t *testing.T, opts actors.ServerOptions) (string, *tlsio.DevCerts) {
	t.Helper()
	srv, certs := listeningServer(t, opts)
	return srv.Addr().String(), certs
}

// listeningServer is listening, for a test that looks at the server too.
func listeningServer(t *testing.T, opts actors.ServerOptions) (*actors.Server, *tlsio.DevCerts) {
	t.Helper()
	certs, err := tlsio.GenerateDevCerts()
	if err != nil {
		t.Fatal(err)
	}
	opts.Host, opts.TLS = "127.0.0.1", certs.ServerOptions()
	srv, err := actors.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, "server", srv.Shutdown) })
	within(t, "the server listening", func() bool { return srv.Addr() != nil })
	return srv, certs
}

// nextConn returns the next connection conns reports (an OnConnection's).
func nextConn(t *testing.T, conns <-chan *actors.Connection) *actors.Connection {
	t.Helper()
	select {
	case c := <-conns:
		return c
	case <-time.After(deadline):
		t.Fatal("no connection event")
		return nil
	}
}

// echoServer is listeningServer with an echo handler, whose connections
// and error events come on the channels returned.
func echoServer(t *testing.T) (*actors.Server, *tlsio.DevCerts, <-chan *actors.Connection, <-chan error) {
	t.Helper()
	conns, errs := make(chan *actors.Connection, 4), make(chan error, 4)
	srv, certs := listeningServer(t, actors.ServerOptions{
		OnConnection:      func(c *actors.Connection) { conns <- c },
		OnToken:           func(tok []byte, c *actors.Connection) { c.Send(tok) },
		OnConnectionError: func(_ *actors.Connection, err error) { errs <- err },
	})
	return srv, certs, conns, errs
}

// stallBehind sends a 12 MiB token that starts "large...", waits until its
// first bytes reach peer (the writer has it; peer reads no more, so the
// write stalls), then sends next, which waits behind it. It returns the
// large token.
func stallBehind(t *testing.T, send func([]byte) bool, peer io.Reader, next string) []byte {
	t.Helper()
	large := append([]byte("large..."), bytes.Repeat([]byte{'x'}, 12<<20)...)
	if !send(large) {
		t.Fatal("Send refused the large token")
	}
	if _, err := io.ReadFull(peer, make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	if !send([]byte(next)) {
		t.Fatalf("Send refused %q", next)
	}
	return large
}

// errorEvent waits for the next error event on errs, which must match
// target; what names it in the failure.
func errorEvent(t *testing.T, errs <-chan error, target error, what string) error {
	t.Helper()
	select {
	case err := <-errs:
		if !errors.Is(err, target) {
			t.Fatalf("error event %v, want %v", err, target)
		}
		return err
	case <-time.After(deadline):
		t.Fatalf("no error event for %s", what)
		return nil
	}
}
