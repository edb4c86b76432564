package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/tlsio"
	"github.com/tokenserver/tokenserver/wire"
)

// benchJSON is the part of bench --json the tests look at.
type benchJSON struct {
	Target    string `json:"target"`
	Mode      string `json:"mode"`
	Protocol  string `json:"protocol"`
	Tokens    int64  `json:"tokens"`
	StoppedBy string `json:"stopped_by"`
	Latency   struct {
		P50, P99, Max float64
	} `json:"latency_us"`
}

func TestBenchSelfAndBaselineBinaryVerify(t *testing.T) {
	t.Parallel()
	for _, target := range []string{"--self", "--baseline"} {
		for _, mode := range []string{"roundtrip", "pipeline"} {
			r := mustRun(t, 0, 2*time.Minute, "", "bench", target, "--mode", mode,
				"--count", "300", "--conns", "3", "--size", "40", "--window", "16", "--json")
			var res benchJSON
			if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
				t.Fatalf("%s %s: bad JSON %q: %v", target, mode, r.stdout, err)
			}
			// Both targets speak token/2, which the load generator offers first.
			if res.Tokens != 300 || res.StoppedBy != "count" || res.Mode != mode || res.Protocol != "token/2" {
				t.Errorf("%s %s: %+v", target, mode, res)
			}
			if res.Latency.P50 <= 0 || res.Latency.P50 > res.Latency.P99 || res.Latency.P99 > res.Latency.Max {
				t.Errorf("%s %s: latency %+v", target, mode, res.Latency)
			}
			if r.stderr != "" { // not a terminal: no progress
				t.Errorf("%s %s: stderr %q", target, mode, r.stderr)
			}
		}
	}
	// The table, and a run stopped by --duration.
	r := mustRun(t, 0, 2*time.Minute, "", "bench", "--self", "--mode", "pipeline", "--duration", "300ms", "--size", "0")
	for _, want := range []string{"target   self: actors.Server", "0-byte tokens, token/2\n", "stopped by duration", "tokens/s", "MB/s", "p50", "p90", "p99", "max"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, r.stdout)
		}
	}
}

// bench speaks the protocol it is told to a tokencat serve in another
// process (token/2 by default), and ends every connection cleanly in the
// server's eyes: on token/2, END both ways once every token is
// acknowledged. token/2 asked of a server restricted to token/1 is an error.
func TestBenchBinaryProtocolsAgainstServe(t *testing.T) {
	t.Parallel()
	dir := certDir(t)
	srv := startServe(t, dir, "--echo")
	runs := 0
	for _, proto := range []string{"", "token/1", "token/2"} {
		for _, mode := range []string{"roundtrip", "pipeline"} {
			args := append([]string{"bench", "--addr", srv.addr, "--mode", mode, "--count", "400", "--conns", "3",
				"--size", "300", "--window", "50", "--json"}, tlsArgs(dir, "client")...)
			want := "token/2"
			if proto != "" {
				args, want = append(args, "--protocol", proto), proto
			}
			r := mustRun(t, 0, 2*time.Minute, "", args...)
			runs += 3
			var res benchJSON
			if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
				t.Fatalf("--protocol %q %s: bad JSON %q: %v", proto, mode, r.stdout, err)
			}
			if res.Tokens != 400 || res.Protocol != want {
				t.Errorf("--protocol %q %s: %d tokens in %q, want 400 in %s", proto, mode, res.Tokens, res.Protocol, want)
			}
		}
	}
	waitFor(t, 20*time.Second, func() bool {
		return strings.Count(srv.stderr.String(), `msg="connection closed"`) == runs
	}, "the server did not see every connection close")
	// Nothing reported: no error, and no reply left unacknowledged ("replies
	// not delivered ... maybe_sent").
	log := srv.stderr.String()
	if n := strings.Count(log, `msg="connection closed"`); n != strings.Count(log, "hadError=false") ||
		strings.Contains(log, "level=ERROR") || strings.Contains(log, "level=WARN") {
		t.Errorf("a connection did not end cleanly (%d closed):\n%s", n, log)
	}

	only1 := startServe(t, dir, "--echo", "--protocol", "token/1")
	base := append([]string{"bench", "--addr", only1.addr, "--count", "10", "--json"}, tlsArgs(dir, "client")...)
	r := mustRun(t, 0, time.Minute, "", base...)
	var res benchJSON
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || res.Protocol != "token/1" || res.Tokens != 10 {
		t.Errorf("against serve --protocol token/1: %q, %v", r.stdout, err)
	}
	r = mustRun(t, exitFailure, time.Minute, "", append(base, "--protocol", "token/2")...)
	if !strings.Contains(r.stderr, "connection 1: the server speaks token/1, not token/2") {
		t.Errorf("--protocol token/2 against serve --protocol token/1: stderr %q", r.stderr)
	}
	mustRun(t, exitUsage, time.Minute, "", append(base, "--protocol", "token/3")...)
}

func TestBenchBinaryDetectsCorruptReply(t *testing.T) {
	t.Parallel()
	certs, err := tlsio.GenerateDevCerts()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "certs")
	if err := certs.WriteFiles(dir, false); err != nil {
		t.Fatal(err)
	}
	srv := startEvilServer(t, certs, flipReply(5))
	for _, mode := range []string{"roundtrip", "pipeline"} {
		args := append([]string{"bench", "--addr", srv.addr(), "--mode", mode, "--count", "50", "--size", "32"}, tlsArgs(dir, "client")...)
		r := tokencat(t, time.Minute, "", args...)
		if r.code == 0 {
			t.Fatalf("%s: bench passed against a server that corrupts reply 5:\n%s", mode, r.stdout)
		}
		if !strings.Contains(r.stderr, "verification failed: connection 1, reply to token 5: byte 0 is") {
			t.Errorf("%s: stderr does not name the token: %q", mode, r.stderr)
		}
	}
}

func TestRunBenchInProcess(t *testing.T) {
	t.Parallel()
	certs, ccfg, scfg := devTLS(t)
	base := startTestBaseline(t, scfg)
	self, err := startSelfServer(certs)
	if err != nil {
		t.Fatal(err)
	}
	defer self.close()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, addr := range []string{base.addr(), self.addr} {
		for _, proto := range []string{wire.ProtocolToken1, wire.ProtocolToken2} {
			for _, mode := range []string{modeRoundtrip, modePipeline} {
				for _, size := range []int{0, 1, 3, 100, 70000} {
					res, err := runBench(ctx, benchConfig{
						addr: addr, tls: ccfg, mode: mode, size: size, count: 200, conns: 2, window: 7,
						protocols: []string{proto},
					})
					if err != nil {
						t.Fatalf("%s %s %s size %d: %v", addr, proto, mode, size, err)
					}
					if res.Tokens != 200 || res.StoppedBy != "count" || res.Protocol != proto {
						t.Errorf("%s %s %s size %d: %d tokens in %s, stopped by %s",
							addr, proto, mode, size, res.Tokens, res.Protocol, res.StoppedBy)
					}
				}
			}
		}
	}
}

func TestRunBenchDetectsBadServers(t *testing.T) {
	t.Parallel()
	certs, ccfg, _ := devTLS(t)
	var held []byte
	swap := func(n int, tok []byte) [][]byte {
		switch n {
		case 3:
			held = append([]byte(nil), tok...)
			return nil
		case 4:
			return [][]byte{tok, held}
		}
		return [][]byte{tok}
	}
	cases := []struct {
		name   string
		mangle func(int, []byte) [][]byte
		mode   string
		want   string
	}{
		{"flipped byte", flipReply(5), modeRoundtrip, "connection 1, reply to token 5: byte 0 is"},
		{"out of order", swap, modePipeline, "reply to token 3: byte 0 is 0x03, expected 0x02 (it is the reply to token 4: out of order)"},
		{"missing reply", func(n int, tok []byte) [][]byte {
			if n == 2 {
				return nil
			}
			return [][]byte{tok}
		}, modeRoundtrip, "no reply to token 2 within 300ms"},
		{"extra reply", func(n int, tok []byte) [][]byte {
			if n == 6 {
				return [][]byte{tok, tok}
			}
			return [][]byte{tok}
		}, modeRoundtrip, "2 replies to token 6"},
		{"longer reply", func(n int, tok []byte) [][]byte {
			if n == 7 {
				return [][]byte{append(tok, 'x')}
			}
			return [][]byte{tok}
		}, modePipeline, "reply to token 7: 33 bytes, expected 32"},
	}
	// Each against a token/1 server and a token/2 one.
	for _, c := range cases {
		for _, twist := range []*twist2{nil, {}} {
			srv := startEvilServer2(t, certs, c.mangle, twist)
			wantBenchError(t, fmt.Sprintf("%s (token/2 %v)", c.name, twist != nil), benchConfig{
				addr: srv.addr(), tls: ccfg, mode: c.mode, size: 32, count: 20, conns: 1, window: 10,
				timeout: 300 * time.Millisecond,
			}, c.want)
		}
	}
}

// On token/2 the load generator also checks the session: a new one, ACKs
// that never go back nor beyond what it wrote, every token acknowledged
// and END at the end; and it asks for the protocol it was told to speak.
func TestRunBenchDetectsBadToken2Servers(t *testing.T) {
	t.Parallel()
	certs, ccfg, _ := devTLS(t)
	echo := func(_ int, tok []byte) [][]byte { return [][]byte{tok} }
	cases := []struct {
		name  string
		twist *twist2
		mode  string
		want  string
	}{
		{"resumed", &twist2{welcome: wire.Welcome{Status: wire.SessionResumed}}, modeRoundtrip,
			"connection 1: token/2 WELCOME to a new session: resumed with 0 received, want new with 0"},
		{"ack beyond", &twist2{ack: func(read uint64) uint64 { return read + 1 }}, modeRoundtrip,
			"reply to token 1: the server acknowledged 2 tokens after 0, with 1 written"},
		{"ack back", &twist2{ack: func(read uint64) uint64 {
			if read == 3 {
				return 1
			}
			return read
		}}, modeRoundtrip,
			"reply to token 3: the server acknowledged 1 tokens after 2, with 3 written"},
		{"no ack", &twist2{ack: func(uint64) uint64 { return 0 }}, modePipeline,
			"connection 1: token/2 end: the server acknowledged 0 of the 20 tokens it echoed"},
		{"no END", &twist2{noEnd: true}, modeRoundtrip,
			"connection 1: token/2 end: the server closed its side without END"},
	}
	for _, c := range cases {
		srv := startEvilServer2(t, certs, echo, c.twist)
		wantBenchError(t, c.name, benchConfig{
			addr: srv.addr(), tls: ccfg, mode: c.mode, size: 32, count: 20, conns: 1, window: 10,
			timeout: 10 * time.Second,
		}, c.want)
	}
	// A server without ALPN speaks token/1: refused when token/2 is asked.
	srv := startEvilServer(t, certs, echo)
	wantBenchError(t, "token/2 asked of a token/1 server", benchConfig{
		addr: srv.addr(), tls: ccfg, mode: modeRoundtrip, size: 32, count: 5, protocols: []string{wire.ProtocolToken2},
	}, "connection 1: the server speaks token/1, not token/2")
}

// wantBenchError runs bench with cfg (for at most a minute) and fails the
// test, naming the case what, unless it fails with an error that contains
// want.
func wantBenchError(t *testing.T, what string, cfg benchConfig, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := runBench(ctx, cfg); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("%s: error %v, want one containing %q", what, err, want)
	}
}

// devTLS makes development certificates, and the client and the server TLS
// configurations of them.
func devTLS(t *testing.T) (certs *tlsio.DevCerts, client, server *tls.Config) {
	t.Helper()
	certs, err := tlsio.GenerateDevCerts()
	if err != nil {
		t.Fatal(err)
	}
	if client, err = tlsio.ClientConfig(certs.ClientOptions()); err != nil {
		t.Fatal(err)
	}
	if server, err = tlsio.ServerConfig(certs.ServerOptions()); err != nil {
		t.Fatal(err)
	}
	return certs, client, server
}

// startTestBaseline starts the baseline in this process with the server
// configuration cfg, until the end of the test.
func startTestBaseline(t *testing.T, cfg *tls.Config) *baselineServer {
	t.Helper()
	base, err := startBaselineServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = base.close() })
	return base
}

func TestHistogramPercentiles(t *testing.T) {
	t.Parallel()
	var h histogram
	for i := 1; i <= 100000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	check := func(p float64, want time.Duration) {
		got := h.percentile(p)
		if got < want || float64(got) > float64(want)*(1+1.0/64) {
			t.Errorf("p%v = %v, want %v within 1/64", p*100, got, want)
		}
	}
	check(0.5, 50*time.Millisecond)
	check(0.9, 90*time.Millisecond)
	check(0.99, 99*time.Millisecond)
	if h.percentile(1) != 100*time.Millisecond || time.Duration(h.max) != 100*time.Millisecond {
		t.Errorf("max %v, p100 %v", time.Duration(h.max), h.percentile(1))
	}
	for v := int64(0); v < 1<<20; v = v*3/2 + 1 {
		i := histIndex(v)
		if v > histUpper(i) || (i > 0 && v <= histUpper(i-1)) {
			t.Fatalf("value %d in bucket %d [%d, %d]", v, i, histUpper(i-1)+1, histUpper(i))
		}
	}
	var empty histogram
	if empty.percentile(0.5) != 0 {
		t.Error("empty histogram")
	}
}

// --escapes makes payloads that escape densely: the load generator makes
// one byte in N a newline or a backslash, and a server echoes them intact
// (bench verifies each reply) in token/1 and token/2. A negative N is a
// usage error.
func TestBenchEscapes(t *testing.T) {
	t.Parallel()
	b := &bench{cfg: benchConfig{size: 1 << 16, escapes: 3}, prefix: 8}
	b.makePayloads()
	for k, p := range b.payloads {
		specials := bytes.Count(p, []byte{'\n'}) + bytes.Count(p, []byte{'\\'})
		if specials < len(p)/4 || specials > len(p)/2 {
			t.Errorf("payload %d: %d newlines and backslashes in %d bytes, want about a third", k, specials, len(p))
		}
	}
	for _, proto := range []string{"token/1", "token/2"} {
		r := mustRun(t, 0, 2*time.Minute, "", "bench", "--self", "--mode", "pipeline", "--protocol", proto,
			"--escapes", "3", "--size", "3000", "--count", "200", "--json")
		var res benchJSON
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
			t.Fatalf("%s: bad JSON %q: %v", proto, r.stdout, err)
		}
		if res.Tokens != 200 || res.StoppedBy != "count" || res.Protocol != proto {
			t.Errorf("%s: %+v", proto, res)
		}
	}
	mustRun(t, exitUsage, time.Minute, "", "bench", "--self", "--escapes", "-1")
}
