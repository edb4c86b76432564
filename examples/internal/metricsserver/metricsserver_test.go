package metricsserver

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime/trace"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const deadline = 10 * time.Second

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: deadline}
	resp, err := c.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

func start(t *testing.T, o Options) *Server {
	t.Helper()
	s, err := Start(o)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		require.NoError(t, s.Shutdown(ctx))
	})
	return s
}

// The provider's metrics, the Go runtime's and the process's are served at
// /metrics in the Prometheus text format; nothing else is served.
func TestServesMetrics(t *testing.T) {
	s := start(t, Options{Addr: "127.0.0.1:0"})
	require.True(t, strings.HasPrefix(s.URL(), "http://127.0.0.1:"), s.URL())
	require.True(t, strings.HasSuffix(s.URL(), "/metrics"), s.URL())
	counter, err := s.MeterProvider().Meter("test").Int64Counter("test.things", metric.WithUnit("{thing}"))
	require.NoError(t, err)
	counter.Add(context.Background(), 3)

	code, body := get(t, s.URL())
	require.Equal(t, http.StatusOK, code)
	var parser expfmt.TextParser
	fams, err := parser.TextToMetricFamilies(bytes.NewReader([]byte(body)))
	require.NoError(t, err)
	require.Contains(t, fams, "test_things_total")
	require.Equal(t, 3.0, fams["test_things_total"].GetMetric()[0].GetCounter().GetValue())
	require.Contains(t, fams, "go_goroutines")

	base := strings.TrimSuffix(s.URL(), MetricsPath)
	for _, path := range []string{"/", PprofPath, PprofPath + "heap", PprofPath + "cmdline", "/debug/vars"} {
		code, _ := get(t, base+path)
		require.Equal(t, http.StatusNotFound, code, path)
	}
}

// With Pprof, Go's profiles are served too, in the forms go tool pprof
// and go tool trace read.
func TestPprof(t *testing.T) {
	s := start(t, Options{Addr: "127.0.0.1:0", Pprof: true})
	base := strings.TrimSuffix(s.URL(), MetricsPath)
	code, body := get(t, base+PprofPath)
	require.Equal(t, http.StatusOK, code)
	for _, name := range []string{"goroutine", "heap", "allocs", "profile", "trace"} {
		require.Contains(t, body, ">"+name+"</a>", "the index links %s", name)
	}
	gzipped := "\x1f\x8b" // a profile in the protocol buffer form, gzipped
	for path, prefix := range map[string]string{
		PprofPath + "cmdline":              "",
		PprofPath + "heap":                 gzipped,
		PprofPath + "heap?debug=1":         "heap profile: ",
		PprofPath + "goroutine?debug=2":    "goroutine ",
		PprofPath + "profile?seconds=1":    gzipped,
		PprofPath + "trace?seconds=0.1":    "go 1.",
		MetricsPath:                        "",
		PprofPath + "allocs?gc=1&debug=1":  "heap profile: ",
		PprofPath + "threadcreate?debug=1": "threadcreate profile: ",
	} {
		code, body := get(t, base+path)
		require.Equal(t, http.StatusOK, code, path)
		require.True(t, strings.HasPrefix(body, prefix), "%s starts %q, want %q", path, body[:min(len(body), 20)], prefix)
	}
	for path, want := range map[string]int{
		PprofPath + "nosuch":              http.StatusNotFound,
		PprofPath + "symbol":              http.StatusNotFound,
		PprofPath + "heap?seconds=1":      http.StatusBadRequest,
		PprofPath + "profile?seconds=-1":  http.StatusBadRequest,
		PprofPath + "trace?seconds=never": http.StatusBadRequest,
		PprofPath + "heap?debug=x":        http.StatusBadRequest,
	} {
		code, _ := get(t, base+path)
		require.Equal(t, want, code, path)
	}
}

// The profiles are served by the server's own mux only: nothing registers
// them on http.DefaultServeMux, where any other server of the process that
// serves it (a nil handler) would expose them.
func TestPprofLeavesDefaultServeMuxAlone(t *testing.T) {
	start(t, Options{Addr: "127.0.0.1:0", Pprof: true})
	for _, path := range []string{PprofPath, PprofPath + "heap", PprofPath + "profile", PprofPath + "cmdline"} {
		_, pattern := http.DefaultServeMux.Handler(httptest.NewRequest(http.MethodGet, path, nil))
		require.Empty(t, pattern, "http.DefaultServeMux serves %s", path)
	}
}

// Shutdown ends a request that runs past ctx (a 30 s execution trace) and
// closes the listener.
func TestShutdownCutsLongRequests(t *testing.T) {
	s, err := Start(Options{Addr: "127.0.0.1:0", Pprof: true})
	require.NoError(t, err)
	base := strings.TrimSuffix(s.URL(), MetricsPath)
	done := make(chan error, 1)
	go func() {
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Minute}
		resp, err := c.Get(base + PprofPath + "trace?seconds=30")
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		done <- err
	}()
	require.Eventually(t, trace.IsEnabled, deadline, time.Millisecond, "the trace runs")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	began := time.Now()
	require.Error(t, s.Shutdown(ctx), "the trace was cut")
	require.Less(t, time.Since(began), deadline)
	select {
	case <-done:
	case <-time.After(deadline):
		t.Fatal("the trace request did not end")
	}
	require.Eventually(t, func() bool { return !trace.IsEnabled() }, deadline, time.Millisecond, "the trace stopped")
	_, err = http.Get(s.URL())
	require.Error(t, err, "listener closed")
}

func TestListenError(t *testing.T) {
	s := start(t, Options{Addr: "127.0.0.1:0"})
	_, err := Start(Options{Addr: s.Addr().String()})
	require.ErrorContains(t, err, "listen tcp "+s.Addr().String())
	_, err = Start(Options{Addr: "no port"})
	require.Error(t, err)
}

// /healthz answers 200 while the server runs; /readyz answers what
// Options.Ready says: 200, or 503 with the reason. Without Ready, /readyz
// is 404.
func TestHealthAndReadiness(t *testing.T) {
	var notReady atomic.Pointer[string]
	starting := "starting: not listening yet"
	notReady.Store(&starting)
	s := start(t, Options{Addr: "127.0.0.1:0", Ready: func() error {
		if p := notReady.Load(); p != nil {
			return errors.New(*p)
		}
		return nil
	}})
	base := strings.TrimSuffix(s.URL(), MetricsPath)
	check := func(path string, wantCode int, wantBody string) {
		t.Helper()
		code, body := get(t, base+path)
		require.Equal(t, wantCode, code, path)
		require.Equal(t, wantBody, body, path)
	}
	check(HealthPath, http.StatusOK, "ok\n")
	check(ReadyPath, http.StatusServiceUnavailable, "not ready: starting: not listening yet\n")
	notReady.Store(nil)
	check(ReadyPath, http.StatusOK, "ok\n")
	closing := "closing"
	notReady.Store(&closing)
	check(ReadyPath, http.StatusServiceUnavailable, "not ready: closing\n")
	check(HealthPath, http.StatusOK, "ok\n")

	plain := start(t, Options{Addr: "127.0.0.1:0"})
	base = strings.TrimSuffix(plain.URL(), MetricsPath)
	check(HealthPath, http.StatusOK, "ok\n")
	code, _ := get(t, base+ReadyPath)
	require.Equal(t, http.StatusNotFound, code, "no Ready: no "+ReadyPath)
}
