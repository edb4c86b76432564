package cluster

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
)

const deadline = 10 * time.Second

// promExporter is a MeterProvider with the OpenTelemetry Prometheus
// exporter, served over HTTP on loopback.
type promExporter struct {
	provider *sdkmetric.MeterProvider
	url      string
}

func startPromExporter(t *testing.T) *promExporter {
	t.Helper()
	registry := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(registry))
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: deadline}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	e := &promExporter{provider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp)), url: "http://" + ln.Addr().String() + "/metrics"}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		require.NoError(t, srv.Shutdown(ctx))
		require.ErrorIs(t, <-served, http.ErrServerClosed)
		require.NoError(t, e.provider.Shutdown(ctx))
	})
	return e
}

// scrape GETs /metrics over HTTP and parses it with the Prometheus text
// parser.
func (e *promExporter) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: deadline}
	resp, err := c.Get(e.url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var parser expfmt.TextParser
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	require.NoError(t, err)
	return fams
}

// counter is the value of the one counter of family name with label
// front="f1".
func counter(t *testing.T, fams map[string]*dto.MetricFamily, name string) float64 {
	t.Helper()
	fam, ok := fams[name]
	require.True(t, ok, "no metric family %s", name)
	require.Equal(t, dto.MetricType_COUNTER, fam.GetType(), name)
	require.NotEmpty(t, fam.GetHelp(), name)
	require.Len(t, fam.GetMetric(), 1, name)
	m := fam.GetMetric()[0]
	labels := map[string]string{}
	for _, l := range m.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	require.Equal(t, "f1", labels["front"], name)
	require.Equal(t, MeterName, labels["otel_scope_name"], name)
	return m.GetCounter().GetValue()
}

// stubLookup is an identity lookup without a cluster: each Get answers the
// next of pids, the last one again once they run out.
type stubLookup struct {
	mu   sync.Mutex
	pids []*actor.PID
	gets int
}

func (l *stubLookup) Get(*pcluster.ClusterIdentity) *actor.PID {
	l.mu.Lock()
	defer l.mu.Unlock()
	pid := l.pids[min(l.gets, len(l.pids)-1)]
	l.gets++
	return pid
}

func (l *stubLookup) RemovePid(*pcluster.ClusterIdentity, *actor.PID) {}
func (l *stubLookup) Setup(*pcluster.Cluster, []string, bool)         {}
func (l *stubLookup) Shutdown()                                       {}

// The front's counts reach the MeterProvider as tokenserver.cluster.*
// metrics, scraped over HTTP through the Prometheus exporter, with exact
// values, along the remote path: a real token server and a TLS client on
// loopback, the front's router, and grains reached through an identity
// lookup. No cluster member runs (see TestMain): the Cluster is made and not
// started, and its lookup is a stub that answers first an activation that
// never answers, then a grain. The first activation stops with a batch
// outstanding: the router looks the grain up again, sends the batch again to
// the grain, and counts a failover when its Credit comes.
func TestFrontMetrics(t *testing.T) {
	exp := startPromExporter(t)
	system := actors.NewQuietSystem()
	defer system.Shutdown()
	cl := pcluster.New(system, pcluster.Configure("test", nil, nil, remote.Configure("127.0.0.1", 0)))
	silent := system.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	grain := system.Root.Spawn(grainProps(func(string) Handler {
		return HandlerFunc(func(tk *Token) { tk.Reply(tk.Data) })
	}, GrainOptions{}))
	lookup := &stubLookup{pids: []*actor.PID{silent, grain}}
	cl.IdentityLookup = lookup

	front, err := NewFront(FrontOptions{
		Cluster: cl, Kind: "tokens", AckTimeout: time.Hour, // the loss is seen when the activation stops
		MeterProvider:    exp.provider,
		MetricAttributes: []attribute.KeyValue{attribute.String("front", "f1")},
	})
	require.NoError(t, err)
	defer front.Stop()

	// Registered, at 0, before any connection.
	names := []string{
		"tokenserver_cluster_connections_routed_total", "tokenserver_cluster_forwarded_tokens_total",
		"tokenserver_cluster_forwarded_batches_total", "tokenserver_cluster_sent_messages_total",
		"tokenserver_cluster_resent_batches_total", "tokenserver_cluster_reply_tokens_total",
		"tokenserver_cluster_duplicate_credits_total", "tokenserver_cluster_lookups_total",
		"tokenserver_cluster_failovers_total",
	}
	fams := exp.scrape(t)
	for _, name := range names {
		require.Zero(t, counter(t, fams, name), name)
	}

	certs, err := tlsio.GenerateDevCerts()
	require.NoError(t, err)
	up := make(chan struct{}, 1)
	opts, err := front.ServerOptions(actors.ServerOptions{
		Host: "127.0.0.1", TLS: certs.ServerOptions(),
		Runtime:   actors.Runtime{MeterProvider: exp.provider},
		OnConnect: func() { up <- struct{}{} },
	})
	require.NoError(t, err)
	srv, err := actors.NewServer(opts)
	require.NoError(t, err)
	defer func() { require.NoError(t, srv.Shutdown(context.Background())) }()
	select {
	case <-up:
	case <-time.After(deadline):
		t.Fatal("not listening")
	}
	cfg, err := tlsio.ClientConfig(certs.ClientOptions())
	require.NoError(t, err)
	conn, err := tlsio.Dial(context.Background(), srv.Addr().String(), cfg, tlsio.DialConfig{})
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(deadline)))

	waitFront := func(what string, cond func(FrontStats) bool) {
		t.Helper()
		require.Eventually(t, func() bool { return cond(front.Stats()) }, deadline, time.Millisecond, what)
	}
	// The first token goes to the silent activation, which never answers.
	_, err = conn.Write([]byte("first\n"))
	require.NoError(t, err)
	waitFront("the first batch sent", func(s FrontStats) bool { return s.Forwarded == 1 })
	// It stops: the router looks the grain up again and sends the batch
	// again, to the grain, which answers.
	system.Root.Stop(silent)
	reply := make([]byte, len("first\n"))
	_, err = io.ReadFull(conn, reply)
	require.NoError(t, err)
	require.Equal(t, "first\n", string(reply))
	// Then round trips through the grain.
	const more = 5
	for range more {
		_, err = conn.Write([]byte("next\n"))
		require.NoError(t, err)
		reply = make([]byte, len("next\n"))
		_, err = io.ReadFull(conn, reply)
		require.NoError(t, err)
		require.Equal(t, "next\n", string(reply))
	}

	fams = exp.scrape(t)
	for name, want := range map[string]float64{
		"tokenserver_cluster_connections_routed_total": 1,
		"tokenserver_cluster_forwarded_tokens_total":   1 + more,
		"tokenserver_cluster_forwarded_batches_total":  1 + more,
		"tokenserver_cluster_sent_messages_total":      1 + 1 + more, // the batch sent again is a message
		"tokenserver_cluster_resent_batches_total":     1,
		"tokenserver_cluster_reply_tokens_total":       1 + more,
		"tokenserver_cluster_duplicate_credits_total":  0,
		"tokenserver_cluster_lookups_total":            2,
		"tokenserver_cluster_failovers_total":          1,
	} {
		require.Equal(t, want, counter(t, fams, name), name)
	}
	lookup.mu.Lock()
	require.Equal(t, 2, lookup.gets)
	lookup.mu.Unlock()
	// The server's own metrics share the provider.
	require.Contains(t, fams, "tokenserver_received_tokens_total")

	// Once stopped, the front reports nothing more.
	require.NoError(t, conn.Close()) // else the server waits for it to answer remoteClose
	require.NoError(t, srv.Shutdown(context.Background()))
	front.Stop()
	for name := range exp.scrape(t) {
		require.False(t, strings.HasPrefix(name, "tokenserver_cluster_"), "%s after Stop", name)
	}
}

// Without a MeterProvider, nothing is registered.
func TestFrontWithoutMetrics(t *testing.T) {
	exp := startPromExporter(t)
	system := actors.NewQuietSystem()
	defer system.Shutdown()
	cl := pcluster.New(system, pcluster.Configure("test", nil, nil, remote.Configure("127.0.0.1", 0)))
	front, err := NewFront(FrontOptions{Cluster: cl, Kind: "tokens"})
	require.NoError(t, err)
	defer front.Stop()
	require.Nil(t, front.metrics)
	for name := range exp.scrape(t) {
		require.False(t, strings.HasPrefix(name, "tokenserver_"), name)
	}
}
