package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
	"github.com/tokenserver/tokenserver/wire"
)

// shutdownGrace is how long serve waits, beyond the close timeout after which
// the runtime force-closes clients, for the server to finish shutting down.
const shutdownGrace = 5 * time.Second

func cmdServe(e *env, args []string) error {
	f := newFlags(e, "serve", "serve --listen HOST:PORT --ca FILE --cert FILE --key FILE [--echo | --exec CMD] [flags]", `
Run a token server. Clients must present a certificate signed by --ca (mutual
TLS). The first line on stdout is "listening on HOST:PORT" with the port
actually bound, so --listen 127.0.0.1:0 works. Connection events are logged to
stderr.

--echo (the default) replies to each token with the same bytes. --exec CMD runs
"sh -c CMD" for each token, with the token on stdin, and replies with its
stdout, raw. Commands of one connection run one at a time, in order, outside the
server actor; a command that fails or times out is logged and gets no reply,
and the server keeps running.

SIGINT or SIGTERM closes the server: clients are sent remoteClose, those that
do not close in time are closed by force, and tokencat exits 0.`)
	listen := f.String("listen", "", "`HOST:PORT` to listen on (port 0 picks a free port)")
	tf := addTLSFlags(f, "server")
	echo := f.Bool("echo", false, "reply to each token with the same bytes (the default)")
	execCmd := f.String("exec", "", "run `CMD` with sh -c for each token, token on stdin; reply with its stdout")
	execTimeout := f.Duration("exec-timeout", 10*time.Second, "kill a --exec command that runs longer than `D` (no reply then)")
	maxToken := f.Int("max-token-size", wire.DefaultMaxTokenSize, "largest token accepted from a client, in `BYTES`; a larger one closes that connection")
	handshakeTimeout := f.Duration("handshake-timeout", tlsio.DefaultHandshakeTimeout, "close a connection whose TLS handshake takes longer than `D`")
	maxConns := f.Int("max-conns", actors.DefaultMaxConnections, "refuse connections past `N` live ones")
	writeTimeout := f.Duration("write-timeout", tlsio.DefaultWriteTimeout, "close a client that reads nothing for `D` while replies wait for it (negative: never)")
	keepAlive := f.Duration("keepalive", 15*time.Second, "TCP keepalive period `D` (negative: off)")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageErrorf("unexpected argument %q", pos[0])
	}
	if err := f.require("listen", "ca", "cert", "key"); err != nil {
		return err
	}
	if *echo && f.given("exec") {
		return usageErrorf("--echo and --exec cannot be used together")
	}
	if f.given("exec") && *execCmd == "" {
		return usageErrorf("--exec needs a command")
	}
	switch {
	case *maxToken <= 0:
		return usageErrorf("--max-token-size must be positive")
	case *maxConns <= 0:
		return usageErrorf("--max-conns must be positive")
	case *handshakeTimeout <= 0:
		return usageErrorf("--handshake-timeout must be positive")
	case *execTimeout <= 0:
		return usageErrorf("--exec-timeout must be positive")
	}
	host, port, err := splitHostPort("listen", *listen)
	if err != nil {
		return err
	}
	tlsOpts, err := tf.load()
	if err != nil {
		return err
	}
	tlsOpts.RequestCert = true // mutual TLS: clients need a certificate signed by --ca

	ctx, stop := signal.NotifyContext(e.ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(e.stderr, nil))

	// Echo gets the tokens of each read at once and sends them back in one
	// message; exec takes them one by one.
	var exec *execHandler
	var onToken func([]byte, *actors.Connection)
	onTokens := func(tokens [][]byte, c *actors.Connection) {
		if !c.SendBatch(tokens) {
			log.Warn("replies dropped: connection closed or its outbound queue is full", "conn", c.ID(), "tokens", len(tokens))
		}
	}
	mode := "echo"
	if *execCmd != "" {
		mode = "exec"
		exec = newExecHandler(*execCmd, *execTimeout, *maxToken, log)
		onToken, onTokens = exec.onToken, nil
	}

	listening := make(chan struct{}, 1)
	failed := make(chan error, 1)
	closed := make(chan struct{}, 1)
	limits := actors.Limits{
		MaxTokenSize:     *maxToken,
		HandshakeTimeout: *handshakeTimeout,
		WriteTimeout:     *writeTimeout,
		KeepAlive:        *keepAlive,
	}
	server, err := actors.NewServer(actors.ServerOptions{
		Host:           host,
		Port:           port,
		TLS:            tlsOpts,
		Limits:         limits,
		MaxConnections: *maxConns,
		Runtime:        actors.Runtime{Logger: log},
		OnConnect:      func() { notify(listening) },
		OnError: func(err error) {
			log.Error("server error", "err", err)
			select {
			case failed <- err:
			default:
			}
		},
		OnClose: func(hadError bool) {
			log.Info("server closed", "hadError", hadError)
			notify(closed)
		},
		OnConnection: func(c *actors.Connection) {
			log.Info("connection opened", "conn", c.ID(), "remote", c.RemoteAddr(), "client", peerName(c))
		},
		OnConnectionError: func(c *actors.Connection, err error) {
			log.Error("connection error", "conn", c.ID(), "remote", c.RemoteAddr(), "code", actors.ErrorCode(err), "err", err)
		},
		OnConnectionClose: func(c *actors.Connection, hadError bool) {
			log.Info("connection closed", "conn", c.ID(), "remote", c.RemoteAddr(), "hadError", hadError)
			if exec != nil {
				exec.forget(c)
			}
		},
		OnToken:  onToken,
		OnTokens: onTokens,
	})
	if err != nil {
		return err
	}

	shutdown := func() error {
		server.Close() // remoteClose to every client
		sctx, cancel := context.WithTimeout(context.Background(), actors.DefaultCloseTimeout+shutdownGrace)
		defer cancel()
		err := server.Shutdown(sctx)
		if exec != nil {
			exec.stop(shutdownGrace)
		}
		if err != nil {
			return fmt.Errorf("server did not shut down in time: %w", err)
		}
		return nil
	}

	select {
	case <-listening:
	case err := <-failed:
		_ = shutdown()
		return err
	case <-ctx.Done():
		return shutdown()
	}
	fmt.Fprintf(e.stdout, "listening on %s\n", server.Addr())
	log.Info("listening", "addr", server.Addr().String(), "mode", mode)

	select {
	case <-ctx.Done():
		log.Info("signal received: closing")
		return shutdown()
	case <-closed:
		err := errors.New("server stopped unexpectedly")
		if serr := shutdown(); serr != nil {
			err = errors.Join(err, serr)
		}
		return err
	}
}

// notify does a non-blocking send on a channel of capacity 1.
func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// peerName is the common name of the client's certificate, for the logs.
func peerName(c *actors.Connection) string {
	st, ok := c.TLSState()
	if !ok {
		return ""
	}
	return commonName(st)
}

func commonName(st tls.ConnectionState) string {
	if len(st.PeerCertificates) == 0 {
		return ""
	}
	return st.PeerCertificates[0].Subject.CommonName
}
