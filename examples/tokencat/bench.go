package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/tokenserver/tokenserver/tlsio"
)

func cmdBench(e *env, args []string) error {
	f := newFlags(e, "bench", "bench (--addr HOST:PORT --ca FILE --cert FILE --key FILE | --self | --baseline) [flags]", `
Load generator. Opens --conns TLS connections (with a client certificate) and
sends tokens of --size random bytes, each with newlines and backslashes in it,
and verifies every reply byte for byte and in order per connection: a reply
that differs, is missing, or takes longer than --timeout is an error (exit 1,
naming the connection and the token).

Targets: --addr a running server; --self the project's actors.Server started
in this process on 127.0.0.1 with in-memory certificates (echo); --baseline a
plain crypto/tls echo loop with the same framing and no actors, the reference
point. The client side is the same plain crypto/tls code for all three.

Modes: roundtrip, each connection sends one token and waits for its reply;
pipeline, each connection keeps up to --window tokens outstanding (also capped
at 4 MiB of encoded bytes). The run stops after --count tokens in total across
connections, or after --duration, whichever comes first (--duration defaults to
10s when neither is given). Prints tokens/s, MB/s (payload bytes echoed per
second, one way) and latency percentiles (send to reply), as a table or, with
--json, as JSON. Progress goes to stderr once a second when it is a terminal.`)
	addr := f.String("addr", "", "`HOST:PORT` of a running server to measure")
	tf := addTLSFlags(f, "client")
	self := f.Bool("self", false, "measure the project's actors.Server, started in this process")
	baseline := f.Bool("baseline", false, "measure a plain crypto/tls echo loop (no actors), started in this process")
	mode := f.String("mode", modeRoundtrip, "`MODE`: roundtrip or pipeline")
	size := f.Int("size", 64, "payload size of each token in `BYTES`")
	count := f.Int64("count", 0, "stop after `N` tokens in total (0: no limit)")
	conns := f.Int("conns", 1, "number of connections `N`")
	duration := f.Duration("duration", 0, "stop after `D` (0: no limit, or 10s when --count is not given either)")
	window := f.Int("window", 1000, "pipeline: at most `N` tokens outstanding per connection")
	timeout := f.Duration("timeout", 10*time.Second, "fail when a reply takes longer than `D`")
	asJSON := f.Bool("json", false, "print the result as JSON")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageErrorf("unexpected argument %q", pos[0])
	}
	targets := 0
	for _, set := range []bool{f.given("addr"), *self, *baseline} {
		if set {
			targets++
		}
	}
	if targets != 1 {
		return usageErrorf("give exactly one of --addr, --self and --baseline")
	}
	if f.given("addr") {
		if err := f.require("addr", "ca", "cert", "key"); err != nil {
			return err
		}
		if _, _, err := splitHostPort("addr", *addr); err != nil {
			return err
		}
	} else if *tf.ca != "" || *tf.cert != "" || *tf.key != "" {
		return usageErrorf("--ca, --cert and --key go with --addr only")
	}
	switch {
	case *mode != modeRoundtrip && *mode != modePipeline:
		return usageErrorf("--mode %q: want roundtrip or pipeline", *mode)
	case *size < 0:
		return usageErrorf("--size must not be negative")
	case *count < 0:
		return usageErrorf("--count must not be negative")
	case *conns <= 0:
		return usageErrorf("--conns must be positive")
	case *duration < 0:
		return usageErrorf("--duration must not be negative")
	case *window <= 0:
		return usageErrorf("--window must be positive")
	case *timeout <= 0:
		return usageErrorf("--timeout must be positive")
	}

	cfg := benchConfig{
		addr: *addr, mode: *mode, size: *size, count: *count, conns: *conns,
		duration: *duration, window: *window, timeout: *timeout,
	}
	if e.stderrIsTerminal {
		cfg.progress = e.stderr
	}
	var stop func() error
	switch {
	case *self || *baseline:
		certs, err := tlsio.GenerateDevCerts()
		if err != nil {
			return err
		}
		if cfg.tls, err = tlsio.ClientConfig(certs.ClientOptions()); err != nil {
			return err
		}
		if *self {
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
		if cfg.tls, err = tf.clientConfig(); err != nil {
			return err
		}
		cfg.target = *addr
	}

	res, err := runBench(e.ctx, cfg)
	if stop != nil {
		if serr := stop(); serr != nil {
			err = errors.Join(err, serr)
		}
	}
	if err != nil {
		return err
	}
	if *asJSON {
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
