package delivery

import (
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
