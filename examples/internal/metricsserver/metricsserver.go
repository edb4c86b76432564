// Package metricsserver serves the metrics of an OpenTelemetry MeterProvider
// over HTTP, in the Prometheus text format, for the example commands
// (tokencat serve --metrics, cluster --metrics): the OpenTelemetry
// Prometheus exporter in a registry of its own, with the Go runtime's and
// the process's collectors, on a net/http server of its own, with liveness
// and readiness probes (HealthPath, ReadyPath); optionally Go's
// profiles on the same server, served as net/http/pprof serves them but
// without importing it (pprof.go says why).
package metricsserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// Paths served.
const (
	// MetricsPath serves the metrics in the Prometheus text format.
	MetricsPath = "/metrics"
	// PprofPath is the index of Go's profiles (Options.Pprof).
	PprofPath = "/debug/pprof/"
	// HealthPath answers 200 "ok" while the server runs: the process is
	// alive (a Kubernetes liveness probe).
	HealthPath = "/healthz"
	// ReadyPath answers 200 "ok" when Options.Ready returns nil, else 503
	// "not ready: " and its error (a Kubernetes readiness probe).
	ReadyPath = "/readyz"
)

// ReadHeaderTimeout bounds the time a client of the HTTP server takes to
// send its request's headers.
const ReadHeaderTimeout = 10 * time.Second

// Options of Start.
type Options struct {
	// Addr is the HOST:PORT to listen on (port 0 picks a free port).
	Addr string
	// Pprof adds Go's profiles under PprofPath: the runtime/pprof
	// profiles by name, profile (CPU), trace and cmdline, as net/http/pprof
	// serves them. Without it, every path but MetricsPath, HealthPath
	// (and ReadyPath with Ready) is 404.
	Pprof bool
	// Ready, if set, is asked at each request of ReadyPath whether the
	// program is ready for work: nil, or why not. It is called from the
	// HTTP server's goroutines. Nil: ReadyPath is 404.
	Ready func() error
}

// Server is a MeterProvider whose metrics it serves over HTTP.
type Server struct {
	provider *sdkmetric.MeterProvider
	ln       net.Listener
	http     *http.Server
	served   chan error
}

// Start listens on o.Addr and serves MetricsPath (and PprofPath with
// o.Pprof) until Shutdown. A failure to listen is net.Listen's error.
func Start(o Options) (*Server, error) {
	registry := prometheus.NewRegistry()
	if err := registry.Register(collectors.NewGoCollector()); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	if err := registry.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	exporter, err := otelprom.New(otelprom.WithRegisterer(registry))
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle(MetricsPath, promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET "+HealthPath, func(w http.ResponseWriter, _ *http.Request) { probeAnswer(w, nil) })
	if o.Ready != nil {
		mux.HandleFunc("GET "+ReadyPath, func(w http.ResponseWriter, _ *http.Request) { probeAnswer(w, o.Ready()) })
	}
	if o.Pprof {
		registerPprof(mux)
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		_ = exporter.Shutdown(context.Background())
		return nil, err // "listen tcp ADDR: ..."
	}
	s := &Server{
		provider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter)),
		ln:       ln,
		// No write timeout: a CPU profile or a trace takes as long as asked.
		http:   &http.Server{Handler: mux, ReadHeaderTimeout: ReadHeaderTimeout},
		served: make(chan error, 1),
	}
	go func() { s.served <- s.http.Serve(ln) }()
	return s, nil
}

// probeAnswer answers a probe: 200 "ok", or 503 "not ready: " and err.
func probeAnswer(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready: %v\n", err)
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

// MeterProvider is the provider whose metrics the server serves: give it
// to the runtime (actors.Runtime.MeterProvider, cluster's
// FrontOptions.MeterProvider).
func (s *Server) MeterProvider() metric.MeterProvider { return s.provider }

// Addr is the address the server listens on, with the port bound.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// URL is the URL of the metrics: http://HOST:PORT/metrics.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() + MetricsPath }

// Shutdown stops the HTTP server, gracefully until ctx ends (a request
// still running then, such as a CPU profile, is cut), then the
// MeterProvider. Give the runtime's objects that use the provider time to
// shut down first.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	if err != nil {
		err = errors.Join(err, s.http.Close())
	}
	if serr := <-s.served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if perr := s.provider.Shutdown(context.WithoutCancel(ctx)); perr != nil {
		err = errors.Join(err, perr)
	}
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}
