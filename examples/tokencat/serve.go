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

	"github.com/asynkron/protoactor-go/actor"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.opentelemetry.io/otel/metric"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/examples/internal/metricsserver"
	"github.com/tokenserver/tokenserver/tlsio"
	"github.com/tokenserver/tokenserver/wire"
)

// shutdownGrace is how long serve waits, beyond the close timeout after which
// the runtime force-closes clients, for the server to finish shutting down.
const shutdownGrace = 5 * time.Second

// serveOptions are the flags of serve.
type serveOptions struct {
	listen           string
	protocol         protocolFlag
	tls              tlsFlags
	reload           reloadFlags
	echo             bool
	exec             string
	execTimeout      time.Duration
	maxToken         int
	handshakeTimeout time.Duration
	maxConns         int
	maxPending       int
	maxPendingAddr   int
	maxHandshakes    int
	highWater        int
	maxQueue         int
	writeTimeout     time.Duration
	keepAlive        time.Duration
	cpuProfile       string
	metrics          string
	pprof            bool
}

// newServeCommand returns "tokencat serve".
func newServeCommand(e *env) *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve --listen HOST:PORT --ca FILE (--cert FILE --key FILE | --pfx FILE) [--crl FILE] [--echo | --exec CMD] [--metrics HOST:PORT [--pprof]] [flags]",
		Short: "run a token server with client certificates required (echo, or a command per token)",
		Long: `Run a token server. Clients must present a certificate signed by --ca (mutual
TLS). The first line on stdout is "listening on HOST:PORT" with the port
actually bound, so --listen 127.0.0.1:0 works; with --listen unix:PATH (TLS
over a Unix domain socket, Node's path option) it is "listening on unix:PATH".
Either way the text after "listening on " is a valid --addr for send and bench.
A socket file left by a server that is gone is replaced; one on which a server
answers is not (exit 1). The server removes its socket file when it exits.
--keepalive and --max-pending-per-addr do not apply to a Unix socket.
Connection events are logged to stderr.

` + tlsHelp + `

--echo (the default) replies to each token with the same bytes. --exec CMD runs
"sh -c CMD" for each token, with the token on stdin, and replies with its
stdout, raw. Commands of one connection run one at a time, in order, outside the
server actor; a command that fails or times out is logged and gets no reply,
and the server keeps running. No token is dropped for waiting: a connection
whose commands are behind is not read until they catch up (TCP slows its
client down), so it holds about one token (up to --max-token-size) and one
read (64 KiB). The commands get tokencat's environment without the variables
whose names start with TOKENCAT_ ($TOKENCAT_PASSPHRASE is also unset once
read). They run as tokencat's user and can read what it can, its key and
passphrase files included: --exec is no sandbox, so give serve a user of its
own and a command that trusts no token.

SIGINT or SIGTERM closes the server: clients are sent remoteClose, those that
do not close in time are closed by force, and tokencat exits 0.

--crl FILE is a certificate revocation list (PEM or DER) signed by --ca: a
client whose certificate it revokes fails its handshake. SIGHUP reads --ca,
--cert and --key (or --pfx), the --passphrase-file and --crl again and
replaces the server's material for new handshakes, while established
connections go on; those whose client certificate the new list revokes are
closed, each with an error in the log. The log says what changed (the
certificate's serial number and expiry). A reload that fails (a file that
cannot be read, a key that does not match its certificate, a wrong
passphrase, a list that --ca did not sign) is logged and changes nothing: the
server goes on with the material it had. A passphrase from $TOKENCAT_PASSPHRASE
is the one read at start. A server certificate that expires within
--expiry-warning (30 days by default) is logged as a warning at start and at
each SIGHUP; with --metrics, tokenserver_tls_certificate_expiry_seconds is the
time left, for an alert.

--cpuprofile FILE writes a CPU profile of the server (runtime/pprof) to FILE
when it exits, after SIGINT or SIGTERM: load the server from another process,
for example with "tokencat bench --addr", then stop it and read the profile
with "go tool pprof -top tokencat FILE".

--metrics HOST:PORT serves the server's metrics at http://HOST:PORT/metrics in
the Prometheus text format: the tokenserver_* metrics (connections, tokens and
bytes, handshake failures by cause, closes by error code...; see "Operating
it" in the README), and the Go runtime's go_* and the process's process_*. They
are served over plain HTTP by a server of their own, stopped when serve exits.
Port 0 picks a free port: before it listens for tokens, serve prints
"metrics on http://HOST:PORT/metrics" on stderr with the port bound.
The same address answers Kubernetes probes: /healthz is 200 "ok" while serve
runs (liveness); /readyz is 200 "ok" while the server listens and accepts,
and 503 before it listens and from the moment it closes (readiness).
--pprof adds Go's profiles at /debug/pprof/ on the same address, as
net/http/pprof serves them (the named profiles, profile, trace, cmdline; no
symbol, no delta profiles), and only there; without it that path is 404. Both show the program's internals, and
a profile costs CPU while it runs: bind --metrics where only trusted hosts
reach it. (/debug/pprof/profile is refused while --cpuprofile runs.)`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runServe(e, cmd.Flags(), &o) },
	}
	f := cmd.Flags()
	addProtocolFlag(f, &o.protocol)
	f.StringVar(&o.listen, "listen", "", "`HOST:PORT` to listen on (port 0 picks a free port), or unix:PATH for a Unix domain socket")
	addTLSFlags(f, &o.tls, "server")
	addReloadFlags(f, &o.reload)
	f.BoolVar(&o.echo, "echo", false, "reply to each token with the same bytes (the default)")
	f.StringVar(&o.exec, "exec", "", "run `CMD` with sh -c for each token, token on stdin; reply with its stdout")
	f.DurationVar(&o.execTimeout, "exec-timeout", 10*time.Second, "kill a --exec command that runs longer than `D` (no reply then)")
	f.IntVar(&o.maxToken, "max-token-size", wire.DefaultMaxTokenSize, "largest token accepted from a client, in `BYTES`; a larger one closes that connection")
	f.DurationVar(&o.handshakeTimeout, "handshake-timeout", actors.DefaultHandshakeTimeout, "close a connection whose TLS handshake takes longer than `D`")
	f.IntVar(&o.maxConns, "max-conns", actors.DefaultMaxConnections, "refuse authenticated connections past `N` live ones")
	f.IntVar(&o.maxPending, "max-pending", actors.DefaultMaxPending, "at most `N` sockets in their TLS handshake or waiting for it; past it the oldest silent one is dropped, or the new one refused")
	f.IntVar(&o.maxPendingAddr, "max-pending-per-addr", actors.DefaultMaxPendingPerAddr, "sockets from one address (an IPv6 /64) past `N` wait for their turn to handshake")
	f.IntVar(&o.maxHandshakes, "max-handshakes", 0, "run the CPU-heavy part of at most `N` handshakes at once (0: half the CPUs, at least 1)")
	f.IntVar(&o.highWater, "high-water-mark", actors.DefaultHighWaterMark, "stop reading a connection while more than `BYTES` of replies wait for it")
	f.IntVar(&o.maxQueue, "max-queue", actors.DefaultMaxQueue, "cut a connection as a slow consumer when `BYTES` of replies wait for it")
	f.DurationVar(&o.writeTimeout, "write-timeout", tlsio.DefaultWriteTimeout, "close a client that reads nothing for `D` while replies wait for it (negative: never)")
	f.DurationVar(&o.keepAlive, "keepalive", 15*time.Second, "TCP keepalive period `D` (negative: off)")
	f.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile to `FILE` on exit (go tool pprof)")
	f.StringVar(&o.metrics, "metrics", "", "serve metrics at http://`HOST:PORT`/metrics in the Prometheus text format, and /healthz and /readyz (port 0 picks a free port)")
	f.BoolVar(&o.pprof, "pprof", false, "with --metrics, also serve Go's profiles (go tool pprof) at /debug/pprof/")
	return cmd
}

// runServe checks the flags f parsed into o, then serves until a signal or
// a failure of the server.
func runServe(e *env, f *pflag.FlagSet, o *serveOptions) (err error) {
	if err := requireFlags(f, "listen"); err != nil {
		return err
	}
	if err := o.tls.check(f); err != nil {
		return err
	}
	if o.echo && f.Changed("exec") {
		return usageErrorf("--echo and --exec cannot be used together")
	}
	if f.Changed("exec") && o.exec == "" {
		return usageErrorf("--exec needs a command")
	}
	switch {
	case o.maxToken <= 0:
		return usageErrorf("--max-token-size must be positive")
	case o.maxConns <= 0:
		return usageErrorf("--max-conns must be positive")
	case o.maxPending <= 0 || o.maxPendingAddr <= 0:
		return usageErrorf("--max-pending and --max-pending-per-addr must be positive")
	case o.maxHandshakes < 0:
		return usageErrorf("--max-handshakes must not be negative")
	case o.highWater <= 0 || o.maxQueue < o.highWater:
		return usageErrorf("--high-water-mark must be positive and --max-queue at least as large")
	case o.handshakeTimeout <= 0:
		return usageErrorf("--handshake-timeout must be positive")
	case o.execTimeout <= 0:
		return usageErrorf("--exec-timeout must be positive")
	}
	if f.Changed("metrics") {
		if _, _, err := splitHostPort("metrics", o.metrics); err != nil {
			return err
		}
	}
	if o.pprof && o.metrics == "" {
		return usageErrorf("--pprof needs --metrics (it serves on the same address)")
	}
	addr, err := parseAddr("listen", o.listen)
	if err != nil {
		return err
	}
	tlsOpts, err := o.tls.load()
	if err != nil {
		return err
	}
	if tlsOpts, err = o.reload.serverTLS(tlsOpts); err != nil { // mutual TLS, --crl
		return err
	}
	log := slog.New(slog.NewTextHandler(e.stderr, nil))
	var meterProvider metric.MeterProvider // nil: no metrics
	ready := newReadiness()
	if o.metrics != "" {
		ms, err := metricsserver.Start(metricsserver.Options{Addr: o.metrics, Pprof: o.pprof, Ready: ready.check})
		if err != nil {
			return fmt.Errorf("--metrics: %w", err)
		}
		// After the token server's shutdown (in shutdown, below), which
		// unregisters its metrics.
		defer stopMetrics(ms, log)
		meterProvider = ms.MeterProvider()
		fmt.Fprintf(e.stderr, "metrics on %s\n", ms.URL())
		if o.pprof {
			fmt.Fprintf(e.stderr, "pprof on http://%s%s\n", ms.Addr(), metricsserver.PprofPath)
		}
	}
	stopProfile, err := startCPUProfile(o.cpuProfile)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, stopProfile()) }()

	ctx, stop := signal.NotifyContext(e.ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1) // SIGHUP reloads the TLS files (reload.go)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	listening := make(chan struct{}, 1)
	failed := make(chan error, 1)
	closed := make(chan struct{}, 1)
	limits := actors.Limits{
		MaxTokenSize:     o.maxToken,
		HandshakeTimeout: o.handshakeTimeout,
		WriteTimeout:     o.writeTimeout,
		KeepAlive:        o.keepAlive,
		HighWaterMark:    o.highWater,
		MaxQueue:         o.maxQueue,
	}
	runtime := actors.Runtime{Logger: log, MeterProvider: meterProvider}

	// Echo gets the tokens of each read at once, lent (SendBatch copies
	// them), and sends them back in one message; exec's handler actor takes
	// them one by one, and returns the credit of each once its command has
	// run.
	var exec *execHandler
	var handler *actor.PID
	onTokens := func(tokens [][]byte, c *actors.Connection) {
		c.SendBatch(tokens) // refused only by a dead connection or at --max-queue; the connection reports it
	}
	mode := "echo"
	if o.exec != "" {
		mode = "exec"
		exec = startExecHandler(&commandRunner{command: o.exec, timeout: o.execTimeout, maxOutput: o.maxToken, env: childEnv(), log: log})
		runtime.System, handler, onTokens = exec.system, exec.pid, nil
		limits.ReadWindow = execReadWindow
	}
	server, err := actors.NewServer(actors.ServerOptions{
		Host:              addr.host,
		Port:              addr.port,
		Path:              addr.path,
		TLS:               tlsOpts,
		Protocols:         o.protocol.protocols,
		Limits:            limits,
		MaxConnections:    o.maxConns,
		MaxPending:        o.maxPending,
		MaxPendingPerAddr: o.maxPendingAddr,
		MaxHandshakes:     o.maxHandshakes,
		Runtime:           runtime,
		Handler:           handler,
		OnConnect:         func() { notify(listening) },
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
		},
		OnDropped: func(c *actors.Connection, tokens [][]byte, reason error) {
			log.Warn("replies not delivered", "conn", c.ID(), "tokens", len(tokens), "code", actors.ErrorCode(reason))
		},
		OnTokens:   onTokens,
		LendTokens: handler == nil,
	})
	if err != nil {
		if exec != nil {
			exec.stop(shutdownGrace)
		}
		return o.tls.explainPassphraseError(err, tlsOpts.Passphrase)
	}

	shutdown := func() error {
		ready.closing()
		if exec != nil {
			exec.closing() // no more commands: waiting tokens let their connections close
		}
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

	life, err := startTLSLife(o.reload, o.tls, server, tlsOpts, log, meterProvider)
	if err != nil {
		return errors.Join(err, shutdown())
	}

	select {
	case <-listening:
	case err := <-failed:
		_ = shutdown()
		return err
	case <-ctx.Done():
		return shutdown()
	}
	ready.listening()
	fmt.Fprintf(e.stdout, "listening on %s\n", formatAddr(server.Addr()))
	log.Info("listening", "addr", formatAddr(server.Addr()), "mode", mode)

	for {
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
		case <-hup:
			log.Info("SIGHUP received: reloading the TLS files")
			life.reload()
		}
	}
}

// metricsShutdownTimeout bounds the graceful end of the metrics server's
// requests when serve exits; a profile still running then is cut.
const metricsShutdownTimeout = 2 * time.Second

// stopMetrics shuts the metrics server down. A request cut by it (a long
// profile) is logged, and does not change serve's exit status.
func stopMetrics(ms *metricsserver.Server, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), metricsShutdownTimeout)
	defer cancel()
	if err := ms.Shutdown(ctx); err != nil {
		log.Warn("metrics server shutdown", "err", err)
		return
	}
	log.Info("metrics server stopped")
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
