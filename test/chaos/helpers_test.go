package chaos

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
)

const deadline = 10 * time.Second

func wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(deadline):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func certs(t *testing.T) *tlsio.DevCerts {
	t.Helper()
	c, err := tlsio.GenerateDevCerts()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// echoServer starts an echo server on addr (port 0 for any) and waits until
// it listens.
func echoServer(t *testing.T, c *tlsio.DevCerts, port int, opts func(*actors.ServerOptions)) *actors.Server {
	t.Helper()
	up := make(chan struct{}, 1)
	o := actors.ServerOptions{
		Host: "127.0.0.1", Port: port, TLS: c.ServerOptions(),
		Runtime: actors.Runtime{System: actors.NewQuietSystem()},
		OnConnect: func() {
			select {
			case up <- struct{}{}:
			default: // listening again later: nobody waits
			}
		},
		OnToken: func(tok []byte, conn *actors.Connection) { conn.Send(tok) },
	}
	if opts != nil {
		opts(&o)
	}
	s, err := actors.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, s.Shutdown) })
	wait(t, up, "server listening")
	return s
}

func port(s *actors.Server) int { return s.Addr().(*net.TCPAddr).Port }

func shutdown(t *testing.T, f func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	if err := f(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

// fastPolicy reconnects within milliseconds, without limit.
func fastPolicy() *actors.ReconnectOptions {
	r := actors.DefaultReconnect()
	r.Policy.Initial = 5 * time.Millisecond
	r.Policy.Max = 50 * time.Millisecond
	r.Policy.MaxRetries = 0
	r.Policy.Unlimited = true
	return r
}
