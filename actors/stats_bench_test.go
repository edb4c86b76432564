package actors

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/sdk/metric"
)

// BenchmarkStatsHooks measures what the counting costs per read chunk and
// per write batch, with metrics off and on (an SDK MeterProvider with a
// reader), from every core at once as connections on many goroutines do: one
// op is one chunk of 3 tokens read, delivered (the histogram, when on) and
// its 3 echoes written.
func BenchmarkStatsHooks(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "metrics=off"
		if on {
			name = "metrics=on"
		}
		b.Run(name, func(b *testing.B) {
			s := newStats(roleServer, func() gaugeValues { return gaugeValues{} })
			if on {
				provider := metric.NewMeterProvider(metric.WithReader(metric.NewManualReader()))
				defer func() { _ = provider.Shutdown(context.Background()) }()
				if err := s.startMetrics(Runtime{MeterProvider: provider}); err != nil {
					b.Fatal(err)
				}
				defer s.stopMetrics()
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					s.read(6, 3) // "a\nb\nc\n": 3 tokens in 6 bytes
					s.delivered(s.stamp())
					s.wrote(6, 3)
				}
			})
		})
	}
}
