package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tokenserver/tokenserver/tlsio"
)

// benchOptions are the flags of bench.
type benchOptions struct {
	addr     string
	tls      tlsFlags
	self     bool
	baseline bool
	mode     string
	size     int
	escapes  int
	count    int64
	conns    int
	duration time.Duration
	window   int
	timeout  time.Duration
	protocol protocolFlag
	asJSON   bool
}

// newBenchCommand returns "tokencat bench".
func newBenchCommand(e *env) *cobra.Command {
	var o benchOptions
	cmd := &cobra.Command{
		Use:   "bench (--addr HOST:PORT --ca FILE (--cert FILE --key FILE | --pfx FILE) | --self | --baseline) [flags]",
		Short: "measure a server's throughput and latency (or of a built-in one, or a plain TLS baseline)",
		Long: `Load generator. Opens --conns TLS connections (with a client certificate) and
sends tokens of --size random bytes, each with newlines and backslashes in it
(one byte in --escapes of them, at random, to measure text that escapes
densely), and verifies every reply byte for byte and in order per connection: a reply
that differs, is missing, or takes longer than --timeout is an error (exit 1,
naming the connection and the token).

Targets: --addr a running server (HOST:PORT, or unix:PATH for a Unix domain
socket); --self the project's actors.Server started in this process on
127.0.0.1 with in-memory certificates (echo); --baseline a plain crypto/tls
echo loop with the same framing and no actors, the reference point. The client side is the same plain crypto/tls code for all three.

Protocols: the connections offer token/2 and token/1 by ALPN and speak the one
the server selects (token/2 with tokenserver servers and the baseline, token/1
with the Node original); --protocol token/1 or token/2 offers only that one
(token/2 against a server that selects none is an error). On token/2 each
connection opens a new session, acknowledges the replies it verified with each
write, and ends the session cleanly (END both ways; the server must have
acknowledged every token).

` + tlsHelp + `

Modes: roundtrip, each connection sends one token and waits for its reply;
pipeline, each connection keeps up to --window tokens outstanding (also capped
at 4 MiB of encoded bytes). The run stops after --count tokens in total across
connections, or after --duration, whichever comes first (--duration defaults to
10s when neither is given). Prints tokens/s, MB/s (payload bytes echoed per
second, one way) and latency percentiles (send to reply), as a table or, with
--json, as JSON. While it runs, a progress line on stderr shows the elapsed
time, the tokens/s so far and, with --count, a bar; only when stdout and stderr
are both terminals, and not with --json.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runBenchCommand(e, cmd.Flags(), &o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.addr, "addr", "", "`HOST:PORT` of a running server to measure, or unix:PATH for a Unix domain socket")
	addTLSFlags(f, &o.tls, "client")
	f.BoolVar(&o.self, "self", false, "measure the project's actors.Server, started in this process")
	f.BoolVar(&o.baseline, "baseline", false, "measure a plain crypto/tls echo loop (no actors), started in this process")
	f.StringVar(&o.mode, "mode", modeRoundtrip, "`MODE`: roundtrip or pipeline")
	f.IntVar(&o.size, "size", 64, "payload size of each token in `BYTES`")
	f.IntVar(&o.escapes, "escapes", 0, "make one payload byte in `N` a newline or a backslash, at random (0: random bytes, about one in 128)")
	f.Int64Var(&o.count, "count", 0, "stop after `N` tokens in total (0: no limit)")
	f.IntVar(&o.conns, "conns", 1, "number of connections `N`")
	f.DurationVar(&o.duration, "duration", 0, "stop after `D` (0: no limit, or 10s when --count is not given either)")
	f.IntVar(&o.window, "window", 1000, "pipeline: at most `N` tokens outstanding per connection")
	f.DurationVar(&o.timeout, "timeout", 10*time.Second, "fail when a reply takes longer than `D`")
	addProtocolFlag(f, &o.protocol)
	f.BoolVar(&o.asJSON, "json", false, "print the result as JSON")
	return cmd
}

// runBenchCommand checks the flags f parsed into o, starts the target when
// it is in-process, runs the load and prints the result.
func runBenchCommand(e *env, f *pflag.FlagSet, o *benchOptions) error {
	targets := 0
	for _, set := range []bool{f.Changed("addr"), o.self, o.baseline} {
		if set {
			targets++
		}
	}
	if targets != 1 {
		return usageErrorf("give exactly one of --addr, --self and --baseline")
	}
	if f.Changed("addr") {
		if err := requireFlags(f, "addr"); err != nil {
			return err
		}
		if err := o.tls.check(f); err != nil {
			return err
		}
		if _, err := parseAddr("addr", o.addr); err != nil {
			return err
		}
	} else {
		if err := refusePassphrase(f); err != nil {
			return err
		}
		for _, name := range tlsFlagNames {
			if f.Changed(name) {
				return usageErrorf("--%s goes with --addr only", name)
			}
		}
	}
	switch {
	case o.mode != modeRoundtrip && o.mode != modePipeline:
		return usageErrorf("--mode %q: want roundtrip or pipeline", o.mode)
	case o.size < 0:
		return usageErrorf("--size must not be negative")
	case o.escapes < 0:
		return usageErrorf("--escapes must not be negative")
	case o.count < 0:
		return usageErrorf("--count must not be negative")
	case o.conns <= 0:
		return usageErrorf("--conns must be positive")
	case o.duration < 0:
		return usageErrorf("--duration must not be negative")
	case o.window <= 0:
		return usageErrorf("--window must be positive")
	case o.timeout <= 0:
		return usageErrorf("--timeout must be positive")
	}

	cfg := benchConfig{
		addr: o.addr, mode: o.mode, size: o.size, escapes: o.escapes, count: o.count, conns: o.conns,
		duration: o.duration, window: o.window, timeout: o.timeout, protocols: o.protocol.protocols,
	}
	if showProgress(e, o.asJSON) {
		cfg.progress = &progress{w: e.stderr, total: o.count, every: progressInterval}
	}
	var stop func() error
	switch {
	case o.self || o.baseline:
		certs, err := tlsio.GenerateDevCerts()
		if err != nil {
			return err
		}
		if cfg.tls, err = tlsio.ClientConfig(certs.ClientOptions()); err != nil {
			return err
		}
		if o.self {
			s, err := startSelfServer(certs)
			if err != nil {
				return err
			}
			cfg.addr, stop = s.addr, s.close
			cfg.target = "self: actors.Server in-process at " + s.addr
		} else {
			var scfg *tls.Config
			if scfg, err = tlsio.ServerConfig(certs.ServerOptions()); err != nil {
				return err
			}
			s, err := startBaselineServer(scfg)
			if err != nil {
				return err
			}
			cfg.addr, stop = s.addr(), s.close
			cfg.target = "baseline: crypto/tls echo loop in-process at " + s.addr()
		}
	default:
		var err error
		if cfg.tls, err = o.tls.clientConfig(); err != nil {
			return err
		}
		cfg.target = o.addr
	}

	res, err := runBench(e.ctx, cfg)
	err = explainTLSError(err, o.tls.allowCommonName)
	if stop != nil {
		if serr := stop(); serr != nil {
			err = errors.Join(err, serr)
		}
	}
	if err != nil {
		return err
	}
	if o.asJSON {
		return writeJSON(e.stdout, res)
	}
	writeTable(e.stdout, res)
	return nil
}

// describeWindow is the window part of the mode line.
func describeWindow(r benchResult) string {
	if r.Mode != modePipeline {
		return ""
	}
	return fmt.Sprintf(", window %d tokens per connection", r.Window)
}
