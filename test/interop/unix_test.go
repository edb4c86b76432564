package interop

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
)

// Node's path option: TLS over a Unix domain socket. token-server 1.0.10
// passes its options to tls.createServer, server.listen and tls.connect as
// they are, so path works on both sides of the original. The Go side is the
// actors runtime with ServerOptions.Path and ClientOptions.Path, and below
// them tlsio's ListenUnix and DialUnix with actors.NewConnection.

// socketPath returns a Unix socket path in a fresh temporary directory.
func socketPath(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ts.sock")
	if len(p) > 100 {
		t.Fatalf("temporary directory too deep for a Unix socket path: %s", p)
	}
	return p
}

// connEvents are the events of one actors.NewConnection.
type connEvents struct {
	tokens      chan []byte
	remoteClose chan struct{}
	errs        chan error
	closes      chan bool
}

func newConnEvents() *connEvents {
	return &connEvents{
		tokens:      make(chan []byte, 64),
		remoteClose: make(chan struct{}, 1),
		errs:        make(chan error, 4),
		closes:      make(chan bool, 1),
	}
}

// options returns ConnectionOptions that report to e; echo makes every
// token go back to the peer.
func (e *connEvents) options(sys *actor.ActorSystem, handshake, echo bool) actors.ConnectionOptions {
	return actors.ConnectionOptions{
		Runtime:   actors.Runtime{System: sys},
		Handshake: handshake,
		OnToken: func(tok []byte, c *actors.Connection) {
			if echo {
				c.Send(tok)
			}
			e.tokens <- tok
		},
		OnRemoteClose: func(*actors.Connection) { e.remoteClose <- struct{}{} },
		OnError:       func(err error) { e.errs <- err },
		OnClose:       func(hadError bool) { e.closes <- hadError },
	}
}

// TestUnixSocket_NodeServer_GoClient: the original server listening on a
// Unix socket (path) serves a Go client that dials it with tlsio.DialUnix,
// verifying the server certificate for "localhost", as Node's client does.
func TestUnixSocket_NodeServer_GoClient(t *testing.T) {
	certs := newCerts(t)
	path := socketPath(t)
	ns := startNodeServerArgs(t, "--path", path,
		"--key", certs.path("server.key"), "--cert", certs.path("server.crt"), "--ca", certs.path("ca.crt"))
	check.Equal(t, path, ns.path)

	cfg, err := tlsio.ClientConfig(certs.ClientOptions())
	check.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	conn, err := tlsio.DialUnix(ctx, path, cfg, tlsio.DialConfig{})
	check.NoError(t, err, "DialUnix")
	check.Equal(t, "localhost", conn.ConnectionState().ServerName)

	ev := newConnEvents()
	c, err := actors.NewConnection(conn, ev.options(newSystem(t), false, false))
	check.NoError(t, err, "NewConnection")
	for _, tok := range compatTokens {
		check.True(t, c.Send(tok), "Send")
		check.Equal(t, tok, recv(t, ev.tokens, "the echo"))
	}

	// The server's close() sends remoteClose over the socket too.
	ns.close()
	recv(t, ev.remoteClose, "OnRemoteClose")
	check.True(t, c.Close(), "Close after remoteClose")
	check.False(t, recv(t, ev.closes, "OnClose"), "hadError")
	check.Equal(t, "closed", ns.nextLine(eventTimeout, "the server's close event"))
	check.NoError(t, ns.waitExit(eventTimeout))
	none(t, ev.errs, "OnError")
}

// unixEchoServer accepts TLS connections on a tlsio.ListenUnix listener and
// echoes tokens with actors.NewConnection, one per accepted socket.
type unixEchoServer struct {
	path  string
	ln    net.Listener
	conns chan *connEvents
	wg    sync.WaitGroup
}

func startUnixEchoServer(t *testing.T, sys *actor.ActorSystem, path string, opts tlsio.Options) *unixEchoServer {
	t.Helper()
	cfg, err := tlsio.ServerConfig(opts)
	check.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	ln, err := tlsio.ListenUnix(ctx, path, tlsio.ListenConfig{})
	check.NoError(t, err, "ListenUnix")
	s := &unixEchoServer{path: path, ln: ln, conns: make(chan *connEvents, 8)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			ev := newConnEvents()
			if _, err := actors.NewConnection(tls.Server(raw, cfg), ev.options(sys, true, true)); err != nil {
				raw.Close()
				ev.errs <- err
			}
			s.conns <- ev
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *unixEchoServer) close() {
	s.ln.Close()
	s.wg.Wait()
}

// TestUnixSocket_GoServer_NodeClient: the original client with path
// connects to a Go listener on a Unix socket; the listener removes its file
// when closed.
func TestUnixSocket_GoServer_NodeClient(t *testing.T) {
	certs := newCerts(t)
	path := socketPath(t)
	s := startUnixEchoServer(t, newSystem(t), path, certs.ServerOptions())

	nc := startNodeClientArgs(t, "--path", path,
		"--key", certs.path("client.key"), "--cert", certs.path("client.crt"), "--ca", certs.path("ca.crt"))
	echoNodeClient(t, nc)
	ev := recv(t, s.conns, "the accepted connection")
	check.False(t, recv(t, ev.closes, "OnClose"), "hadError")
	none(t, ev.errs, "OnError")

	// A client without a certificate is refused there too.
	bad := startNodeClientArgs(t, "--path", path, "--ca", certs.path("ca.crt"))
	requireErrorThenClose(t, bad.until("close"))
	ev = recv(t, s.conns, "the refused connection")
	check.ErrorIs(t, recv(t, ev.errs, "OnError"), actors.ErrHandshake)
	check.True(t, recv(t, ev.closes, "OnClose"), "hadError")

	s.close()
	_, err := os.Lstat(path)
	check.True(t, errors.Is(err, os.ErrNotExist), "socket file after close: %v", err)
}

// TestUnixSocket_NodeLeavesStaleSocket: tlsio.ListenUnix refuses the path
// while the original server listens on it, and takes it over once that
// server was killed and left its socket file behind.
func TestUnixSocket_NodeLeavesStaleSocket(t *testing.T) {
	certs := newCerts(t)
	path := socketPath(t)
	ns := startNodeServerArgs(t, "--path", path,
		"--key", certs.path("server.key"), "--cert", certs.path("server.crt"), "--ca", certs.path("ca.crt"))

	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	_, err := tlsio.ListenUnix(ctx, path, tlsio.ListenConfig{})
	check.ErrorIs(t, err, tlsio.ErrAddressInUse)
	check.ErrorIs(t, err, syscall.EADDRINUSE)
	t.Logf("ListenUnix while node listens: %v", err)

	check.NoError(t, ns.cmd.Process.Kill())
	_ = ns.waitExit(eventTimeout) // killed: a non-zero status
	_, err = os.Lstat(path)
	check.NoError(t, err, "node left its socket file")

	s := startUnixEchoServer(t, newSystem(t), path, certs.ServerOptions())
	echoNodeClient(t, startNodeClientArgs(t, "--path", path,
		"--key", certs.path("client.key"), "--cert", certs.path("client.crt"), "--ca", certs.path("ca.crt")))
	ev := recv(t, s.conns, "the accepted connection")
	check.False(t, recv(t, ev.closes, "OnClose"), "hadError")
}

// TestUnixSocket_ActorsServer_NodeClient: an actors.Server with Path serves
// the original client with path: tokens of any content, a client without a
// certificate refused (and only it), remoteClose on Close, and the socket
// file removed once the server has closed.
func TestUnixSocket_ActorsServer_NodeClient(t *testing.T) {
	certs := newCerts(t)
	path := socketPath(t)
	gs := startGoServerOn(t, newSystem(t), path, certs.ServerOptions())
	check.Equal(t, "unix", gs.srv.Addr().Network())
	check.Equal(t, path, gs.srv.Addr().String())
	nodeArgs := []string{"--path", path,
		"--key", certs.path("client.key"), "--cert", certs.path("client.crt"), "--ca", certs.path("ca.crt")}

	echoNodeClient(t, startNodeClientArgs(t, nodeArgs...))
	check.False(t, recv(t, gs.connCloses, "OnConnectionClose"), "hadError")
	none(t, gs.connErrs, "OnConnectionError")

	bad := startNodeClientArgs(t, "--path", path, "--ca", certs.path("ca.crt"))
	ce := recv(t, gs.connErrs, "OnConnectionError")
	t.Logf("actors server on a Unix socket, client without a certificate: %v", ce.err)
	check.ErrorIs(t, ce.err, actors.ErrHandshake)
	check.True(t, recv(t, gs.connCloses, "OnConnectionClose"), "hadError")
	requireErrorThenClose(t, bad.until("close"))

	nc := startNodeClientArgs(t, nodeArgs...)
	nc.expect("connect")
	nc.send([]byte("ping"))
	check.Equal(t, []byte("ping"), nc.token())
	check.True(t, gs.srv.Close(), "Close")
	nc.expect("remoteClose")
	nc.close()
	check.False(t, nc.expect("close").HadError, "client.js close hadError")
	check.False(t, recv(t, gs.closes, "the server's OnClose"), "hadError")
	_, err := os.Lstat(path)
	check.True(t, errors.Is(err, os.ErrNotExist), "socket file after Close: %v", err)
}

// TestUnixSocket_NodeServer_ActorsClient: an actors.Client with Path talks to
// the original server listening on path, verifying its certificate for
// "localhost" as Node's client does, and sees remoteClose when it closes.
// With certificates of cert-gen.sh (CN=localhost, no subjectAltName) it
// needs AllowCommonName, as over TCP.
func TestUnixSocket_NodeServer_ActorsClient(t *testing.T) {
	sys := newSystem(t)
	t.Run("development certificates", func(t *testing.T) {
		certs := newCerts(t)
		path := socketPath(t)
		ns := startNodeServerArgs(t, "--path", path,
			"--key", certs.path("server.key"), "--cert", certs.path("server.crt"), "--ca", certs.path("ca.crt"))
		gc := startGoClientOn(t, sys, "", 0, path, certs.ClientOptions())
		recv(t, gc.connected, "OnConnect")
		for _, tok := range compatTokens {
			check.True(t, gc.cli.Send(tok), "Send")
			check.Equal(t, tok, recv(t, gc.tokens, "the echo"))
		}
		ns.close()
		recv(t, gc.remoteClose, "OnRemoteClose")
		check.True(t, gc.cli.Close(), "Close after remoteClose")
		check.False(t, recv(t, gc.closes, "OnClose"), "hadError")
		check.Equal(t, "closed", ns.nextLine(eventTimeout, "the server's close event"))
		check.NoError(t, ns.waitExit(eventTimeout))
		none(t, gc.errs, "OnError")
	})
	t.Run("cert-gen.sh certificates", func(t *testing.T) {
		certs := newCertGenCerts(t, "localhost")
		path := socketPath(t)
		startNodeServerArgs(t, "--path", path,
			"--key", certs.path("server.key"), "--cert", certs.path("server.crt"), "--ca", certs.path("ca.crt"))

		gc := startGoClientOn(t, sys, "", 0, path, certs.clientOptions(false, ""))
		err := recv(t, gc.errs, "OnError")
		check.ErrorIs(t, err, tlsio.ErrCommonNameOnly)
		check.Contains(t, err.Error(), "AllowCommonName")
		check.True(t, recv(t, gc.closes, "OnClose"), "hadError")

		echoGoClient(t, startGoClientOn(t, sys, "", 0, path, certs.clientOptions(true, "")))
	})
}
