package observability

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/supervisor"
	"github.com/tokenserver/tokenserver/tlsio"
	"github.com/tokenserver/tokenserver/wire"
)

const deadline = 10 * time.Second

// exporter is the OpenTelemetry Prometheus exporter behind a MeterProvider,
// served over HTTP on loopback, as the README shows.
type exporter struct {
	provider *sdkmetric.MeterProvider
	url      string
	http     *http.Server
	client   *http.Client
	served   chan error
}

func startExporter(t *testing.T) *exporter {
	t.Helper()
	registry := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(registry))
	require.NoError(t, err)
	e := &exporter{
		provider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp)),
		client:   &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: deadline},
		served:   make(chan error, 1),
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	e.url = "http://" + ln.Addr().String() + "/metrics"
	e.http = &http.Server{Handler: mux, ReadHeaderTimeout: deadline}
	go func() { e.served <- e.http.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		require.NoError(t, e.http.Shutdown(ctx))
		require.ErrorIs(t, <-e.served, http.ErrServerClosed)
		require.NoError(t, e.provider.Shutdown(ctx))
	})
	return e
}

// scrape GETs /metrics and parses it with the Prometheus text parser. It
// returns the families and the raw text.
func (e *exporter) scrape(t *testing.T) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	resp, err := e.client.Get(e.url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var parser expfmt.TextParser
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	require.NoError(t, err)
	return fams, string(body)
}

// sample is the value of the one metric of family name whose labels include
// labels; absent fails the test.
func sample(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	fam, ok := fams[name]
	require.True(t, ok, "no metric family %s", name)
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	var found []*dto.Metric
	for _, m := range fam.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			match = match && have[k] == v
		}
		if match {
			found = append(found, m)
		}
	}
	require.Len(t, found, 1, "%s%v", name, want)
	m := found[0]
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	t.Fatalf("%s: no value", name)
	return 0
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	end := time.After(deadline)
	for !cond() {
		select {
		case <-tick.C:
		case <-end:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(deadline):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func encoded(tokens [][]byte) float64 {
	n := 0
	for _, t := range tokens {
		n += len(wire.AppendToken(nil, t))
	}
	return float64(n)
}

// A server and a reconnecting client report to one MeterProvider with the
// Prometheus exporter. Real traffic over TLS on loopback: tokens both ways, a
// connection refused at MaxConnections, a client without a certificate, a bad
// escape, and a reconnect after the server closed the client's connection.
// Then /metrics is scraped over HTTP, parsed, and every count checked
// exactly, with the names and units the README lists.
func TestScrapeCountsWhatHappened(t *testing.T) {
	began := time.Now()
	exp := startExporter(t)
	certs, err := tlsio.GenerateDevCerts()
	require.NoError(t, err)

	up := make(chan struct{}, 1)
	// token/1: the byte counts checked below are its encoding's.
	srv, err := actors.NewServer(actors.ServerOptions{
		Host: "127.0.0.1", TLS: certs.ServerOptions(), MaxConnections: 2,
		Protocols: []string{actors.ProtocolToken1},
		Runtime:   actors.Runtime{MeterProvider: exp.provider},
		OnConnect: func() { up <- struct{}{} },
		OnToken:   func(tok []byte, c *actors.Connection) { c.Send(tok) },
	})
	require.NoError(t, err)
	defer func() { require.NoError(t, srv.Shutdown(context.Background())) }()
	recv(t, up, "listening")
	addr := srv.Addr().String()
	port := srv.Addr().(*net.TCPAddr).Port

	policy := supervisor.Policy{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond, Multiplier: 2, Unlimited: true}
	connected, replies := make(chan struct{}, 4), make(chan []byte, 64)
	cli, err := actors.NewClient(actors.ClientOptions{
		Host: "127.0.0.1", Port: port, TLS: certs.ClientOptions(),
		Runtime:   actors.Runtime{MeterProvider: exp.provider},
		Reconnect: &actors.ReconnectOptions{Policy: policy, BufferSize: 1 << 20},
		OnConnect: func() { connected <- struct{}{} },
		OnToken:   func(tok []byte, _ *actors.Connection) { replies <- tok },
	})
	require.NoError(t, err)
	defer func() { require.NoError(t, cli.Shutdown(context.Background())) }()
	recv(t, connected, "client connected")

	var sent [][]byte
	roundTrips := func(tokens ...string) {
		for _, s := range tokens {
			tok := []byte(s)
			require.True(t, cli.Send(tok))
			require.Equal(t, tok, recv(t, replies, "echo"))
			sent = append(sent, tok)
		}
	}
	roundTrips("one", "two\nlines", `back\slash`, "", strings.Repeat("long ", 1000))

	// A raw TLS client with a certificate: one token, echoed.
	cfg, err := tlsio.ClientConfig(certs.ClientOptions())
	require.NoError(t, err)
	bad, err := tlsio.Dial(context.Background(), addr, cfg, tlsio.DialConfig{})
	require.NoError(t, err)
	defer bad.Close()
	_, err = bad.Write([]byte("raw\n"))
	require.NoError(t, err)
	echo := make([]byte, 4)
	_, err = io.ReadFull(bad, echo)
	require.NoError(t, err)

	// Two connections are open: a third is refused at MaxConnections.
	third, err := tlsio.Dial(context.Background(), addr, cfg, tlsio.DialConfig{})
	require.NoError(t, err)
	_, err = third.Read(make([]byte, 1))
	require.Error(t, err, "refused")
	third.Close()

	// The raw client sends a bad escape: its connection fails.
	_, err = bad.Write([]byte("\\q\n"))
	require.NoError(t, err)
	waitUntil(t, "the bad connection's end", func() bool { return srv.Stats().ClosedError[actors.CodeInvalidEscape] == 1 })

	// A client without a certificate: the handshake fails.
	nocertOpts := certs.ClientOptions()
	nocertOpts.Key, nocertOpts.Cert = nil, nil
	nocertCfg, err := tlsio.ClientConfig(nocertOpts)
	require.NoError(t, err)
	nocert, err := tlsio.Dial(context.Background(), addr, nocertCfg, tlsio.DialConfig{})
	if err == nil { // TLS 1.3: the client learns of it on its first read
		_, err = nocert.Read(make([]byte, 1))
		nocert.Close()
	}
	require.Error(t, err)
	waitUntil(t, "the handshake failure", func() bool { return srv.Stats().HandshakeFailures[actors.CauseCertificate] == 1 })

	// The server closes the client's connection; the client reconnects.
	local := cli.Connection().LocalAddr().String()
	for _, c := range srv.Connections() {
		if c.RemoteAddr().String() == local {
			require.True(t, c.Close())
		}
	}
	recv(t, connected, "client reconnected")
	roundTrips("after", "the", "reconnect")

	n := float64(len(sent))
	size := encoded(sent)
	waitUntil(t, "every echo written", func() bool {
		st := srv.Stats()
		return st.TokensSent == int64(n)+1 && st.Open == 1 && cli.Stats().TokensSent == int64(n)
	})

	fams, text := exp.scrape(t)
	if testing.Verbose() {
		var lines []string
		for _, l := range strings.Split(text, "\n") {
			if strings.HasPrefix(l, "tokenserver_") {
				lines = append(lines, l)
			}
		}
		sort.Strings(lines)
		t.Logf("scrape:\n%s", strings.Join(lines, "\n"))
	}
	raw := float64(len("raw\n"))
	badBytes := raw + float64(len("\\q\n"))

	type want struct {
		name   string
		labels []string
		value  float64
	}
	for _, w := range []want{
		// Server.
		{"tokenserver_server_accepted_total", nil, 5},
		{"tokenserver_connections_opened_total", []string{"role", "server"}, 3},
		{"tokenserver_connections_open", []string{"role", "server"}, 1},
		{"tokenserver_connections_closed_total", []string{"role", "server", "outcome", "clean"}, 1},
		{"tokenserver_connections_closed_total", []string{"role", "server", "outcome", "error", "code", "invalid_escape"}, 1},
		{"tokenserver_connections_closed_total", []string{"role", "server", "outcome", "error", "code", "slow_consumer"}, 0},
		{"tokenserver_server_refused_total", []string{"reason", "max_connections"}, 1},
		{"tokenserver_server_refused_total", []string{"reason", "max_pending"}, 0},
		{"tokenserver_server_handshake_failures_total", []string{"cause", "certificate"}, 1},
		{"tokenserver_server_handshake_failures_total", []string{"cause", "timeout"}, 0},
		{"tokenserver_received_tokens_total", []string{"role", "server"}, n + 1},
		{"tokenserver_received_bytes_total", []string{"role", "server"}, size + badBytes},
		{"tokenserver_sent_tokens_total", []string{"role", "server"}, n + 1},
		{"tokenserver_sent_bytes_total", []string{"role", "server"}, size + raw},
		{"tokenserver_dropped_tokens_total", []string{"role", "server", "reason", "not_sent"}, 0},
		{"tokenserver_queue_bytes", []string{"role", "server"}, 0},
		{"tokenserver_connections_paused", []string{"role", "server"}, 0},
		{"tokenserver_slow_consumer_cuts_total", []string{"role", "server"}, 0},
		{"tokenserver_handler_panics_total", []string{"role", "server"}, 0},
		{"tokenserver_server_accept_retries_total", nil, 0},
		// Client.
		{"tokenserver_client_connect_attempts_total", nil, 2},
		{"tokenserver_client_connect_failures_total", []string{"cause", "refused"}, 0},
		{"tokenserver_client_reconnects_total", nil, 1},
		{"tokenserver_client_giveups_total", nil, 0},
		{"tokenserver_client_buffer_bytes", nil, 0},
		{"tokenserver_connections_opened_total", []string{"role", "client"}, 2},
		{"tokenserver_connections_open", []string{"role", "client"}, 1},
		{"tokenserver_connections_closed_total", []string{"role", "client", "outcome", "clean"}, 1},
		{"tokenserver_sent_tokens_total", []string{"role", "client"}, n},
		{"tokenserver_sent_bytes_total", []string{"role", "client"}, size},
		{"tokenserver_received_tokens_total", []string{"role", "client"}, n},
		{"tokenserver_received_bytes_total", []string{"role", "client"}, size},
		{"tokenserver_dropped_tokens_total", []string{"role", "client", "reason", "buffer_full"}, 0},
	} {
		require.Equal(t, w.value, sample(t, fams, w.name, w.labels...), "%s%v", w.name, w.labels)
	}

	// Types, units (in the names: _bytes, _seconds) and help texts.
	types := map[string]dto.MetricType{
		"tokenserver_connections_open":            dto.MetricType_GAUGE,
		"tokenserver_connections_closed_total":    dto.MetricType_COUNTER,
		"tokenserver_received_bytes_total":        dto.MetricType_COUNTER,
		"tokenserver_queue_bytes":                 dto.MetricType_GAUGE,
		"tokenserver_client_buffer_bytes":         dto.MetricType_GAUGE,
		"tokenserver_delivery_duration_seconds":   dto.MetricType_HISTOGRAM,
		"tokenserver_connections_paused":          dto.MetricType_GAUGE,
		"tokenserver_server_accept_retries_total": dto.MetricType_COUNTER,
	}
	for name, typ := range types {
		require.Equal(t, typ, fams[name].GetType(), name)
		require.NotEmpty(t, fams[name].GetHelp(), name)
	}

	// The delivery histogram: one observation per read chunk delivered, at
	// most one per token, in buckets from 5 µs to 10 s.
	for _, role := range []string{"server", "client"} {
		chunks := sample(t, fams, "tokenserver_delivery_duration_seconds", "role", role)
		require.GreaterOrEqual(t, chunks, 1.0, role)
		require.LessOrEqual(t, chunks, n+1, role)
	}
	for _, m := range fams["tokenserver_delivery_duration_seconds"].GetMetric() {
		h := m.GetHistogram()
		require.Len(t, h.GetBucket(), 21, "20 bounds and +Inf")
		require.Equal(t, 0.000005, h.GetBucket()[0].GetUpperBound())
		require.Equal(t, 10.0, h.GetBucket()[19].GetUpperBound())
		require.Equal(t, h.GetSampleCount(), h.GetBucket()[20].GetCumulativeCount())
		require.Positive(t, h.GetSampleSum())
		// Each is a time from a chunk's arrival, within this test.
		require.LessOrEqual(t, h.GetSampleSum(), time.Since(began).Seconds()*float64(h.GetSampleCount()))
	}

	if path := os.Getenv("SCRAPE_SAMPLE"); path != "" { // for the README's example
		require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
	}

	// Once shut down, the server and the client report nothing more: their
	// callbacks are gone. (The SDK keeps what the histogram recorded.)
	require.NoError(t, cli.Shutdown(context.Background()))
	require.NoError(t, srv.Shutdown(context.Background()))
	fams, _ = exp.scrape(t)
	for name := range fams {
		if name != "tokenserver_delivery_duration_seconds" {
			require.False(t, strings.HasPrefix(name, "tokenserver_"), "%s after shutdown", name)
		}
	}
}

// Metrics off (no MeterProvider): nothing is registered, and Stats counts all
// the same.
func TestMetricsOffStatsOn(t *testing.T) {
	exp := startExporter(t)
	certs, err := tlsio.GenerateDevCerts()
	require.NoError(t, err)
	up := make(chan struct{}, 1)
	srv, err := actors.NewServer(actors.ServerOptions{
		Host: "127.0.0.1", TLS: certs.ServerOptions(),
		OnConnect: func() { up <- struct{}{} },
		OnToken:   func(tok []byte, c *actors.Connection) { c.Send(tok) },
	})
	require.NoError(t, err)
	defer func() { require.NoError(t, srv.Shutdown(context.Background())) }()
	recv(t, up, "listening")
	cfg, err := tlsio.ClientConfig(certs.ClientOptions())
	require.NoError(t, err)
	conn, err := tlsio.Dial(context.Background(), srv.Addr().String(), cfg, tlsio.DialConfig{})
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.Write([]byte("a\nb\n"))
	require.NoError(t, err)
	_, err = io.ReadFull(conn, make([]byte, 4))
	require.NoError(t, err)
	waitUntil(t, "the counts", func() bool {
		st := srv.Stats()
		return st.TokensReceived == 2 && st.TokensSent == 2 && st.Open == 1
	})
	fams, _ := exp.scrape(t)
	for name := range fams {
		require.False(t, strings.HasPrefix(name, "tokenserver_"), name)
	}
}

// A MetricAttributes label tells apart two servers sharing a MeterProvider.
func TestMetricAttributesTellServersApart(t *testing.T) {
	exp := startExporter(t)
	certs, err := tlsio.GenerateDevCerts()
	require.NoError(t, err)
	for _, name := range []string{"a", "b"} {
		up := make(chan struct{}, 1)
		srv, err := actors.NewServer(actors.ServerOptions{
			Host: "127.0.0.1", TLS: certs.ServerOptions(),
			Runtime: actors.Runtime{MeterProvider: exp.provider,
				MetricAttributes: []attribute.KeyValue{attribute.String("listener", name)}},
			OnConnect: func() { up <- struct{}{} },
		})
		require.NoError(t, err)
		defer func() { require.NoError(t, srv.Shutdown(context.Background())) }()
		recv(t, up, "listening")
		if name == "b" {
			conn, err := tls.Dial("tcp", srv.Addr().String(), &tls.Config{InsecureSkipVerify: true})
			if err == nil {
				_, err = conn.Read(make([]byte, 1))
				conn.Close()
			}
			require.Error(t, err)
			waitUntil(t, "b's failure", func() bool { return srv.Stats().HandshakeFailures[actors.CauseCertificate] == 1 })
		}
	}
	fams, _ := exp.scrape(t)
	require.Equal(t, 0.0, sample(t, fams, "tokenserver_server_accepted_total", "listener", "a"))
	require.Equal(t, 1.0, sample(t, fams, "tokenserver_server_accepted_total", "listener", "b"))
	require.Equal(t, 1.0, sample(t, fams, "tokenserver_server_handshake_failures_total", "listener", "b", "cause", "certificate"))
}
