package hardening

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
)

const deadline = 15 * time.Second

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

// rig is an echo server that records its connection events, and a healthy
// client that must keep working throughout a test.
type rig struct {
	t       *testing.T
	certs   *tlsio.DevCerts
	srv     *actors.Server
	port    int
	mu      sync.Mutex
	errs    []error
	errCh   chan error
	closes  chan bool
	healthy *actors.Client
	replies chan []byte
}

func newRig(t *testing.T, tune func(*actors.ServerOptions)) *rig {
	t.Helper()
	c, err := tlsio.GenerateDevCerts()
	require.NoError(t, err)
	return newRigWith(t, c, tune)
}

// newRigWith is newRig with the given certificates.
func newRigWith(t *testing.T, c *tlsio.DevCerts, tune func(*actors.ServerOptions)) *rig {
	t.Helper()
	var err error
	r := &rig{t: t, certs: c, errCh: make(chan error, 4096), closes: make(chan bool, 4096), replies: make(chan []byte, 64)}
	up := make(chan struct{}, 1)
	o := actors.ServerOptions{
		Host: "127.0.0.1", TLS: c.ServerOptions(),
		Runtime:   actors.Runtime{System: actors.NewQuietSystem()},
		OnConnect: func() { up <- struct{}{} },
		OnToken:   func(tok []byte, conn *actors.Connection) { conn.Send(tok) },
		OnConnectionError: func(_ *actors.Connection, err error) {
			r.mu.Lock()
			r.errs = append(r.errs, err)
			r.mu.Unlock()
			r.errCh <- err
		},
		OnConnectionClose: func(_ *actors.Connection, had bool) { r.closes <- had },
	}
	if tune != nil {
		tune(&o)
	}
	r.srv, err = actors.NewServer(o)
	require.NoError(t, err)
	t.Cleanup(func() { shutdown(t, r.srv.Shutdown) })
	wait(t, up, "server listening")
	r.port = r.srv.Addr().(*net.TCPAddr).Port

	connected := make(chan struct{}, 1)
	r.healthy, err = actors.NewClient(actors.ClientOptions{
		Host: "127.0.0.1", Port: r.port, TLS: c.ClientOptions(),
		Runtime:   actors.Runtime{System: actors.NewQuietSystem()},
		OnConnect: func() { connected <- struct{}{} },
		OnToken:   func(tok []byte, _ *actors.Connection) { r.replies <- tok },
	})
	require.NoError(t, err)
	t.Cleanup(func() { shutdown(t, r.healthy.Shutdown) })
	wait(t, connected, "healthy client connected")
	r.checkHealthy("at the start")
	return r
}

// checkHealthy makes one round trip on the healthy client.
func (r *rig) checkHealthy(when string) {
	r.t.Helper()
	tok := []byte(fmt.Sprintf("healthy %s\n\\", when))
	require.True(r.t, r.healthy.Send(tok), "healthy client Send %s", when)
	require.Equal(r.t, tok, wait(r.t, r.replies, "healthy echo "+when), "healthy echo %s", when)
}

// tlsDial opens a raw mutual-TLS connection to the server.
func (r *rig) tlsDial() *tls.Conn {
	r.t.Helper()
	c, err := r.tryDial()
	require.NoError(r.t, err)
	return c
}

func (r *rig) tryDial() (*tls.Conn, error) {
	cfg, err := tlsio.ClientConfig(r.certs.ClientOptions())
	require.NoError(r.t, err)
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	return tlsio.Dial(ctx, fmt.Sprintf("127.0.0.1:%d", r.port), cfg, tlsio.DialConfig{})
}

// errorsMatching counts the connection errors seen that match target.
func (r *rig) errorsMatching(target error) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.errs {
		if errors.Is(e, target) {
			n++
		}
	}
	return n
}

func shutdown(t *testing.T, f func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	if err := f(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

// readUntilClosed reads c until it fails, and returns the error.
func readUntilClosed(c net.Conn, limit time.Duration) error {
	_ = c.SetReadDeadline(time.Now().Add(limit))
	buf := make([]byte, 4096)
	for {
		if _, err := c.Read(buf); err != nil {
			return err
		}
	}
}

// newLineLogger returns a logger that hands each record, as one text line,
// to say.
func newLineLogger(say func(format string, args ...any)) *slog.Logger {
	return slog.New(slog.NewTextHandler(lineWriter(func(p []byte) { say("%s", strings.TrimRight(string(p), "\n")) }), nil))
}

// lineWriter is an io.Writer that passes each write on.
type lineWriter func([]byte)

func (w lineWriter) Write(p []byte) (int, error) {
	w(p)
	return len(p), nil
}
