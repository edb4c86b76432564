package actors

import (
	"context"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel/sdk/metric"

	"github.com/tokenserver/tokenserver/wire"
)

// BenchmarkStatsHooks measures what the counting costs per read chunk and
// per write batch, with metrics off and on (an SDK MeterProvider with a
// reader), from every core at once as connections on many goroutines do: one
// op is one chunk of 3 tokens read, delivered (the histogram, when on) and
// its 3 echoes written.
func BenchmarkStatsHooks(b *testing.B) {
	dec, err := wire.NewDecoder(1024)
	if err != nil {
		b.Fatal(err)
	}
	frames, err := dec.AppendFrames(nil, []byte("a\nb\nc\n"))
	if err != nil {
		b.Fatal(err)
	}
	segs := [][]byte{[]byte("a\nb\nc\n")}
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
				var controls atomic.Int32
				for pb.Next() {
					s.read(6, frames)
					s.delivered(s.stamp())
					s.wrote(6, segs, &controls)
				}
			})
		})
	}
}
