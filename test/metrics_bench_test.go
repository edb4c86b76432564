package test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
	"github.com/tokenserver/tokenserver/wire"
)

// BenchmarkMetrics measures what metrics cost the server on two of the loads
// of tokencat compare: round trips of 64 B tokens on 64 connections, and
// pipelined 16 B tokens on one connection (1,000 outstanding). The load
// generator is plain crypto/tls (as tokencat bench); the server under test is
// an actors echo server with metrics off (no MeterProvider), then on (an
// OpenTelemetry SDK MeterProvider with a reader, collected once at the end).
// Compare the tokens/s of off and on, and the CPU time the process (server
// and load generator) spent per token, which a shared machine's other load
// disturbs less than the wall-clock rate.
func BenchmarkMetrics(b *testing.B) {
	loads := []struct {
		name string
		run  func(b *testing.B, addr string, cfg *tls.Config)
	}{
		{"RoundTrip64B-64conns", func(b *testing.B, addr string, cfg *tls.Config) { roundTrips(b, addr, cfg, 64, 64) }},
		{"Pipelined16B", func(b *testing.B, addr string, cfg *tls.Config) { pipelined(b, addr, cfg, 16, 1000) }},
	}
	for _, load := range loads {
		for _, on := range []bool{false, true} {
			name := load.name + "/metrics=off"
			if on {
				name = load.name + "/metrics=on"
			}
			b.Run(name, func(b *testing.B) {
				var provider *sdkmetric.MeterProvider
				var reader *sdkmetric.ManualReader
				rt := actors.Runtime{}
				if on {
					reader = sdkmetric.NewManualReader()
					provider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
					rt.MeterProvider = provider
				}
				addr, cfg, srv := benchEchoServer(b, rt)
				b.ResetTimer()
				cpu := cpuTime()
				load.run(b, addr, cfg)
				cpu = cpuTime() - cpu
				b.StopTimer()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
				if cpu > 0 {
					b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/token")
				}
				if on {
					var rm metricdata.ResourceMetrics
					if err := reader.Collect(context.Background(), &rm); err != nil {
						b.Fatal(err)
					}
					if st := srv.Stats(); st.TokensReceived < int64(b.N) {
						b.Fatalf("the server counted %d tokens of %d", st.TokensReceived, b.N)
					}
					shutdown(b, srv.Shutdown)
					if err := provider.Shutdown(context.Background()); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// benchEchoServer starts an actors echo server on loopback with rt, and
// returns its address and a client TLS configuration for it.
func benchEchoServer(b *testing.B, rt actors.Runtime) (string, *tls.Config, *actors.Server) {
	return loadServer(b, actors.ServerOptions{
		Runtime:  rt,
		OnTokens: func(toks [][]byte, c *actors.Connection) { c.SendBatch(toks) },
	})
}

func dialAll(b *testing.B, addr string, cfg *tls.Config, n int) []*tls.Conn {
	b.Helper()
	conns := make([]*tls.Conn, n)
	for i := range conns {
		c, err := tlsio.Dial(context.Background(), addr, cfg, tlsio.DialConfig{})
		if err != nil {
			b.Fatal(err)
		}
		conns[i] = c
	}
	b.Cleanup(func() {
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return conns
}

// roundTrips: b.N round trips of size-byte tokens shared among conns
// connections, each waiting for its reply before the next token.
func roundTrips(b *testing.B, addr string, cfg *tls.Config, size, conns int) {
	cs := dialAll(b, addr, cfg, conns)
	frame := wire.AppendToken(nil, bytes.Repeat([]byte{'r'}, size))
	var left atomic.Int64
	left.Store(int64(b.N))
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for _, c := range cs {
		wg.Go(func() {
			r := bufio.NewReader(c)
			for left.Add(-1) >= 0 {
				if _, err := c.Write(frame); err != nil {
					errs <- err
					return
				}
				reply, err := r.ReadSlice('\n')
				if err != nil || len(reply) != len(frame) {
					errs <- fmt.Errorf("reply %q: %v", reply, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// pipelined: b.N size-byte tokens on one connection, at most window of them
// outstanding, written in batches.
func pipelined(b *testing.B, addr string, cfg *tls.Config, size, window int) {
	c := dialAll(b, addr, cfg, 1)[0]
	const batch = 100
	frame := wire.AppendToken(nil, bytes.Repeat([]byte{'p'}, size))
	buf := bytes.Repeat(frame, batch)
	slots := make(chan struct{}, window/batch)
	werr := make(chan error, 1)
	go func() {
		for sent := 0; sent < b.N; sent += batch {
			slots <- struct{}{}
			n := min(batch, b.N-sent)
			if _, err := c.Write(buf[:n*len(frame)]); err != nil {
				werr <- err
				return
			}
		}
		werr <- nil
	}()
	rbuf := make([]byte, 64<<10)
	got, credited := 0, 0
	for got < b.N {
		n, err := c.Read(rbuf)
		got += bytes.Count(rbuf[:n], []byte{'\n'})
		for ; got-credited >= batch || (got == b.N && credited < got); credited += batch {
			<-slots
		}
		if err != nil && got < b.N {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			b.Fatal(err)
		}
	}
	if err := <-werr; err != nil {
		b.Fatal(err)
	}
}
