package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/tokenserver/tokenserver/wire"
)

// metricsLine is what serve --metrics prints on stderr.
var metricsLine = regexp.MustCompile(`(?m)^metrics on (http://127\.0\.0\.1:[0-9]+/metrics)$`)

// metricsURL waits for serve's "metrics on URL" line on stderr and returns
// the URL.
func (p *serveProc) metricsURL(t *testing.T) string {
	t.Helper()
	var url string
	waitFor(t, 10*time.Second, func() bool {
		m := metricsLine.FindStringSubmatch(p.stderr.String())
		if m != nil {
			url = m[1]
		}
		return m != nil
	}, "serve printed no \"metrics on http://127.0.0.1:PORT/metrics\" line on stderr")
	return url
}

// httpGet GETs url over a new connection and returns the status and body.
func httpGet(t *testing.T, url string) (int, []byte) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, body
}

// families is a scrape, parsed.
type families map[string]*dto.MetricFamily

// scrape GETs url and parses it with the Prometheus text parser.
func scrape(t *testing.T, url string) families {
	t.Helper()
	code, body := httpGet(t, url)
	if code != http.StatusOK {
		t.Fatalf("GET %s: status %d\n%s", url, code, body)
	}
	var parser expfmt.TextParser
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parsing the scrape of %s: %v\n%s", url, err, body)
	}
	return fams
}

// value is the value of the one metric of family name whose labels include
// labels (name, value, ...); ok is false when there is none.
func (f families) value(t *testing.T, name string, labels ...string) (v float64, ok bool) {
	t.Helper()
	var found []*dto.Metric
	for _, m := range f[name].GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			match = match && have[labels[i]] == labels[i+1]
		}
		if match {
			found = append(found, m)
		}
	}
	switch {
	case len(found) == 0:
		return 0, false
	case len(found) > 1:
		t.Fatalf("%s%q: %d metrics match", name, labels, len(found))
	}
	m := found[0]
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue(), true
	case m.Gauge != nil:
		return m.Gauge.GetValue(), true
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount()), true
	}
	t.Fatalf("%s%q: no value", name, labels)
	return 0, false
}

// scrapeUntil scrapes url until cond holds of the scrape, for at most 10 s.
func scrapeUntil(t *testing.T, url, what string, cond func(families) bool) families {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		fams := scrape(t, url)
		if cond(fams) {
			return fams
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// serve --metrics 127.0.0.1:0 serves /metrics; a known workload (N tokens
// from one client, a bad frame on another connection, a client certificate
// from another CA) shows in a scrape over HTTP, parsed with the Prometheus
// text parser, with exact counts.
func TestServeMetricsCountAKnownWorkload(t *testing.T) {
	t.Parallel()
	dir := certDir(t)
	other := certDir(t)
	// token/1: the byte counts below are its encoding's.
	srv := startServe(t, dir, "--metrics", "127.0.0.1:0", "--protocol", "token/1")
	url := srv.metricsURL(t)

	// Before any traffic: the server's metrics are there, at 0.
	fams := scrape(t, url)
	for _, name := range []string{"tokenserver_server_accepted_total", "tokenserver_connections_open", "tokenserver_received_tokens_total"} {
		if v, ok := fams.value(t, name, "role", "server"); !ok || v != 0 {
			t.Errorf("before traffic: %s = %v (present %v), want 0", name, v, ok)
		}
	}

	// 1. N tokens from "tokencat send", echoed, on one connection.
	const n = 200
	var in, echoed strings.Builder
	encoded := 0
	for i := range n {
		tok := fmt.Sprintf(`token\%d`, i) // a backslash: escaped on the wire
		in.WriteString(tok + "\n")
		echoed.WriteString(tok + "\n")
		encoded += len(wire.AppendToken(nil, []byte(tok)))
	}
	r := mustRun(t, 0, 30*time.Second, in.String(), sendArgs(srv.addr, dir)...)
	if r.stdout != echoed.String() {
		t.Fatalf("send printed %d bytes, want the %d tokens echoed", len(r.stdout), n)
	}

	// 2. Another connection: one token, echoed, then an invalid escape,
	// which makes the server close it.
	bad := dialClient(t, srv.addr, dir)
	_ = bad.SetDeadline(time.Now().Add(10 * time.Second))
	const good, badFrame = "raw\n", "\\q\n"
	if _, err := bad.Write([]byte(good)); err != nil {
		t.Fatal(err)
	}
	echo := make([]byte, len(good))
	if _, err := io.ReadFull(bad, echo); err != nil || string(echo) != good {
		t.Fatalf("echo %q, %v", echo, err)
	}
	if _, err := bad.Write([]byte(badFrame)); err != nil {
		t.Fatal(err)
	}
	if rest, err := io.ReadAll(bad); err != nil && !isClosed(err) {
		t.Fatalf("after the bad frame: read %q, %v; want the server to close", rest, err)
	}

	// 3. A client certificate from another CA: the handshake fails.
	args := []string{"send", "--addr", srv.addr, "--ca", filepath.Join(dir, "ca.crt"),
		"--cert", filepath.Join(other, "client.crt"), "--key", filepath.Join(other, "client.key"),
		"--timeout", "5s", "refused"}
	if r := mustRun(t, 1, 30*time.Second, "", args...); r.stdout != "" {
		t.Errorf("a refused client got replies: %q", r.stdout)
	}

	// Every connection has ended on the server's side.
	fams = scrapeUntil(t, url, "the three connections to end", func(f families) bool {
		cert, _ := f.value(t, "tokenserver_server_handshake_failures_total", "cause", "certificate")
		clean, _ := f.value(t, "tokenserver_connections_closed_total", "outcome", "clean")
		escape, _ := f.value(t, "tokenserver_connections_closed_total", "code", "invalid_escape")
		return cert == 1 && clean == 1 && escape == 1
	})
	type want struct {
		name   string
		labels []string
		value  float64
	}
	for _, w := range []want{
		{"tokenserver_server_accepted_total", nil, 3},
		{"tokenserver_connections_opened_total", nil, 2},
		{"tokenserver_connections_open", nil, 0},
		{"tokenserver_connections_closed_total", []string{"outcome", "clean"}, 1},
		{"tokenserver_connections_closed_total", []string{"outcome", "error", "code", "invalid_escape"}, 1},
		{"tokenserver_connections_closed_total", []string{"outcome", "error", "code", "token_too_large"}, 0},
		{"tokenserver_connections_closed_total", []string{"outcome", "error", "code", "truncated_frame"}, 0},
		{"tokenserver_connections_closed_total", []string{"outcome", "error", "code", "slow_consumer"}, 0},
		{"tokenserver_connections_closed_total", []string{"outcome", "error", "code", "connection"}, 0},
		{"tokenserver_connections_closed_total", []string{"outcome", "error", "code", "forced_close"}, 0},
		{"tokenserver_server_handshake_failures_total", []string{"cause", "certificate"}, 1},
		{"tokenserver_server_handshake_failures_total", []string{"cause", "timeout"}, 0},
		{"tokenserver_server_handshake_failures_total", []string{"cause", "closed"}, 0},
		{"tokenserver_server_handshake_failures_total", []string{"cause", "not_tls"}, 0},
		{"tokenserver_server_handshake_failures_total", []string{"cause", "tls"}, 0},
		{"tokenserver_server_handshake_failures_total", []string{"cause", "other"}, 0},
		{"tokenserver_server_refused_total", []string{"reason", "max_connections"}, 0},
		{"tokenserver_server_refused_total", []string{"reason", "max_pending"}, 0},
		{"tokenserver_received_tokens_total", nil, n + 1},
		{"tokenserver_received_bytes_total", nil, float64(encoded + len(good) + len(badFrame))},
		{"tokenserver_sent_tokens_total", nil, n + 1},
		{"tokenserver_sent_bytes_total", nil, float64(encoded + len(good))},
		{"tokenserver_dropped_tokens_total", []string{"reason", "not_sent"}, 0},
		{"tokenserver_dropped_tokens_total", []string{"reason", "maybe_sent"}, 0},
		{"tokenserver_queue_bytes", nil, 0},
		{"tokenserver_connections_paused", nil, 0},
		{"tokenserver_slow_consumer_cuts_total", nil, 0},
		{"tokenserver_handler_panics_total", nil, 0},
		{"tokenserver_server_accept_retries_total", nil, 0},
	} {
		labels := append([]string{"role", "server"}, w.labels...)
		v, ok := fams.value(t, w.name, labels...)
		if !ok || v != w.value {
			t.Errorf("%s%q = %v (present %v), want %v", w.name, labels, v, ok, w.value)
		}
	}
	// The delivery histogram: one observation per read chunk, at most one
	// per token.
	if chunks, _ := fams.value(t, "tokenserver_delivery_duration_seconds", "role", "server"); chunks < 2 || chunks > n+1 {
		t.Errorf("tokenserver_delivery_duration_seconds_count = %v, want 2 to %d", chunks, n+1)
	}
	// The client side of this process has no metrics: serve runs a server.
	if _, ok := fams.value(t, "tokenserver_connections_open", "role", "client"); ok {
		t.Error("metrics of a client in serve")
	}
	// The Go runtime's and the process's.
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("no %s", name)
		}
	}
}

// isClosed: a read error that means the peer closed (the TLS close_notify
// makes io.ReadAll return nil instead).
func isClosed(err error) bool {
	return strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "EOF")
}

// /debug/pprof/ is served only with --pprof, on the --metrics address; the
// metrics server stops with serve.
func TestServePprofOnlyWithFlag(t *testing.T) {
	t.Parallel()
	dir := certDir(t)
	plain := startServe(t, dir, "--metrics", "127.0.0.1:0")
	profiled := startServe(t, dir, "--metrics", "127.0.0.1:0", "--pprof")
	paths := []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline"}
	for _, c := range []struct {
		p    *serveProc
		want int
	}{{plain, http.StatusNotFound}, {profiled, http.StatusOK}} {
		url := c.p.metricsURL(t)
		base := strings.TrimSuffix(url, "/metrics")
		for _, path := range paths {
			if code, _ := httpGet(t, base+path); code != c.want {
				t.Errorf("GET %s: status %d, want %d", base+path, code, c.want)
			}
		}
		if code, _ := httpGet(t, url); code != http.StatusOK {
			t.Errorf("GET %s: status %d", url, code)
		}
	}
	if want := "pprof on " + strings.TrimSuffix(profiled.metricsURL(t), "metrics") + "debug/pprof/\n"; !strings.Contains(profiled.stderr.String(), want) {
		t.Errorf("serve --pprof stderr does not contain %q:\n%s", want, profiled.stderr.String())
	}
	if strings.Contains(plain.stderr.String(), "pprof on") {
		t.Errorf("serve without --pprof mentions pprof:\n%s", plain.stderr.String())
	}

	// On SIGTERM, serve stops the metrics server too and exits 0.
	url := profiled.metricsURL(t)
	if err := profiled.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := profiled.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("serve exited %d after SIGTERM, want 0\nstderr:\n%s", code, profiled.stderr.String())
	}
	if s := profiled.stderr.String(); !strings.Contains(s, `msg="metrics server stopped"`) {
		t.Errorf("serve did not log the metrics server's stop:\n%s", s)
	}
	host := strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/metrics")
	if conn, err := net.DialTimeout("tcp", host, 5*time.Second); err == nil {
		conn.Close()
		t.Errorf("%s still accepts connections after serve exited", host)
	}
}

// Nothing tokencat links registers Go's profiles on http.DefaultServeMux,
// as importing net/http/pprof does: they are served only on the --metrics
// address, with --pprof. (expvar, which the Prometheus client imports,
// registers /debug/vars there; nothing in tokencat serves that mux.)
func TestNoProfilesOnDefaultServeMux(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/profile", "/debug/pprof/cmdline"} {
		if _, pattern := http.DefaultServeMux.Handler(httptest.NewRequest(http.MethodGet, path, nil)); pattern != "" {
			t.Errorf("http.DefaultServeMux serves %s (pattern %q)", path, pattern)
		}
	}
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	if slices.Contains(strings.Fields(string(out)), "net/http/pprof") {
		t.Error("tokencat imports net/http/pprof, which registers its handlers on http.DefaultServeMux")
	}
}

// A --metrics address in use: serve exits 1 before it listens for tokens.
func TestServeMetricsAddressInUseExits1(t *testing.T) {
	t.Parallel()
	dir := certDir(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	args := append([]string{"serve", "--listen", "127.0.0.1:0", "--metrics", ln.Addr().String()}, tlsArgs(dir, "server")...)
	r := mustRun(t, 1, 30*time.Second, "", args...)
	if r.stdout != "" || !strings.Contains(r.stderr, "serve: --metrics: listen tcp "+ln.Addr().String()+": bind: address already in use") {
		t.Errorf("stdout %q, stderr %q", r.stdout, r.stderr)
	}
}

func TestServeHelpDocumentsMetrics(t *testing.T) {
	t.Parallel()
	r := runInProcess(t, "serve", "--help")
	for _, want := range []string{"--metrics HOST:PORT", "--pprof", `"metrics on http://HOST:PORT/metrics"`, "/debug/pprof/", "Prometheus text format", "/healthz", "/readyz"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("serve help does not contain %q:\n%s", want, r.stdout)
		}
	}
}
