package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/tokenserver/tokenserver/actors/cluster/clusterpb"
	"github.com/tokenserver/tokenserver/tlsio"
	"github.com/tokenserver/tokenserver/wire"
)

// The bench role is a front node that measures itself: round trips of one
// token at a time per connection, from clients in this process through the
// front and a remote grain on a handler node and back, against Proto.Actor's
// own request/reply from this process to the same grain (a TokenBatch of
// one token to the grain's PID, answered to a future), in the same run,
// alternating, with the same number of concurrent callers. It prints one
// "bench" line per measurement and one "ratio" line per concurrency.
//
// With --bench-plain it also measures, in turn with the other two, the same
// clients against a plain crypto/tls echo of token/1 frames (tokencat
// baseline, a process of its own): no actors and no cluster, only the TLS
// legs that every token through a front has and the reference has not. A
// token through the front costs at least both: what the plain echo costs
// and what the reference costs. So, with x the plain echo's round trips per
// second over the reference's, the front's can be at most about x/(1+x) of
// the reference's, whether CPU bounds them (64 connections: costs in CPU
// add up) or latency does (one connection: round trip times add up), and
// its p50 at least about 1 + the plain echo's p50 over the reference's. A
// "bound" line per concurrency prints both bounds and how close the front
// comes to them.

type benchResult struct {
	rps float64
	p50 time.Duration
	p99 time.Duration
}

func (r benchResult) String() string {
	return fmt.Sprintf("%.0f round trips/s, p50 %v, p99 %v", r.rps, r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond))
}

func runBench(ctx context.Context, c config, o *out, cl *pcluster.Cluster, front *frontNode) error {
	clientTLS, err := tlsio.LoadFiles(filepath.Join(c.certs, "client.key"), filepath.Join(c.certs, "client.crt"), filepath.Join(c.certs, "ca.crt"))
	if err != nil {
		return err
	}
	identity, err := identityOf(clientTLS)
	if err != nil {
		return err
	}
	// The grain the tokens go to, for the baseline: found once, outside the
	// measurement (a lookup blocks).
	var grain *actor.PID
	for grain == nil {
		if grain = cl.Get(identity, Kind); grain == nil {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	for _, conns := range c.benchConns {
		// Warm up every path (connections, remote streams, pools); not counted.
		_ = benchProto(cl.ActorSystem, grain, conns, c.benchDuration/4)
		if _, err := benchTokens(front.addr, clientTLS, conns, c.benchDuration/4); err != nil {
			return err
		}
		plain := c.benchPlain != "" && c.benchWhat == "both"
		if plain {
			if _, err := benchTokens(c.benchPlain, clientTLS, conns, c.benchDuration/4); err != nil {
				return fmt.Errorf("the plain echo: %w", err)
			}
		}
		var proto, tokens, echo []benchResult // measured one after the other, a round at a time
		for rep := 0; rep < c.benchReps; rep++ {
			var p, tk, e benchResult
			if c.benchWhat != "tokens" {
				p = benchProto(cl.ActorSystem, grain, conns, c.benchDuration)
				o.printf("bench proto-actor request/reply conns=%d rep=%d: %v", conns, rep+1, p)
			}
			if c.benchWhat != "proto" {
				if tk, err = benchTokens(front.addr, clientTLS, conns, c.benchDuration); err != nil {
					return err
				}
				st := front.f.Stats()
				o.printf("bench tokens through the front conns=%d rep=%d: %v (so far: %d batches in %d messages)", conns, rep+1, tk, st.Batches, st.Messages)
			}
			if plain {
				if e, err = benchTokens(c.benchPlain, clientTLS, conns, c.benchDuration); err != nil {
					return fmt.Errorf("the plain echo: %w", err)
				}
				o.printf("bench plain TLS echo (no cluster) conns=%d rep=%d: %v", conns, rep+1, e)
			}
			proto, tokens, echo = append(proto, p), append(tokens, tk), append(echo, e)
			if ctx.Err() != nil {
				return nil
			}
		}
		if c.benchWhat != "both" {
			continue
		}
		// Each ratio is the median of the ratios of one round's runs, close
		// in time, which a machine whose load changes skews less than a
		// ratio of medians.
		thr := medianRatio(tokens, proto, func(a, b benchResult) float64 { return a.rps / b.rps })
		lat := medianRatio(tokens, proto, func(a, b benchResult) float64 { return float64(a.p50) / float64(b.p50) })
		o.printf("ratio conns=%d: throughput %.2f of Proto.Actor's request/reply (target >= 0.7), p50 %.2fx (target <= 1.5x)",
			conns, thr, lat)
		if !plain {
			continue
		}
		x := medianRatio(echo, proto, func(a, b benchResult) float64 { return a.rps / b.rps })
		y := medianRatio(echo, proto, func(a, b benchResult) float64 { return float64(a.p50) / float64(b.p50) })
		o.printf("bound conns=%d: the plain TLS echo does %.2f of Proto.Actor's round trips, p50 %.2fx; so through a remote grain at most about %.2f, p50 at least about %.2fx; the front reaches %.2f of that throughput bound",
			conns, x, y, x/(1+x), 1+y, thr/(x/(1+x)))
	}
	o.printf("bench done")
	return nil
}

// medianRatio is the median over the rounds of f(a[i], b[i]).
func medianRatio(a, b []benchResult, f func(a, b benchResult) float64) float64 {
	var r []float64
	for i := range a {
		r = append(r, f(a[i], b[i]))
	}
	slices.Sort(r)
	return r[len(r)/2]
}

// summarize turns the latencies of every caller into a result.
func summarize(lat [][]time.Duration, elapsed time.Duration) benchResult {
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	if len(all) == 0 {
		return benchResult{}
	}
	slices.Sort(all)
	return benchResult{
		rps: float64(len(all)) / elapsed.Seconds(),
		p50: all[len(all)/2],
		p99: all[len(all)*99/100],
	}
}

// benchProto: conns callers, each sending a TokenBatch of one token to the
// grain and waiting for its Credit on a future, for d.
func benchProto(system *actor.ActorSystem, grain *actor.PID, conns int, d time.Duration) benchResult {
	lat := make([][]time.Duration, conns)
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn := fmt.Sprintf("bench/%s/%d", system.ID, benchSeq.Add(1))
			tok := []byte("token-" + strconv.Itoa(i))
			for seq := uint64(1); time.Now().Before(end); seq++ {
				t0 := time.Now()
				f := actor.NewFuture(system, 5*time.Second)
				system.Root.Send(grain, &clusterpb.TokenBatch{
					Conn: conn, Seq: seq, Acked: seq - 1, ReplyTo: f.PID(), Tokens: [][]byte{tok},
				})
				if _, err := f.Result(); err != nil {
					return
				}
				lat[i] = append(lat[i], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	return summarize(lat, time.Since(start))
}

var benchSeq atomic.Uint64

// benchTokens: conns clients of addr (the front), each sending one token and
// waiting for its reply, for d. The clients are plain crypto/tls loops with
// the wire framing (as tokencat bench's), so that the measurement is of the
// front and the grain, not of a client runtime.
func benchTokens(addr string, tlsOpts tlsio.Options, conns int, d time.Duration) (benchResult, error) {
	cfg, err := tlsio.ClientConfig(tlsOpts)
	if err != nil {
		return benchResult{}, err
	}
	var socks []*tls.Conn
	defer func() {
		for _, c := range socks {
			_ = c.Close()
		}
	}()
	for range conns {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := tlsio.Dial(ctx, addr, cfg, tlsio.DialConfig{})
		cancel()
		if err != nil {
			return benchResult{}, fmt.Errorf("bench client: %w", err)
		}
		socks = append(socks, c)
	}
	lat := make([][]time.Duration, conns)
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	for i, c := range socks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			frame := wire.AppendToken(nil, []byte("token-"+strconv.Itoa(i)))
			dec, _ := wire.NewDecoder(1 << 20)
			buf := make([]byte, 64<<10)
			var frames []wire.Frame
			for time.Now().Before(end) {
				t0 := time.Now()
				if _, err := c.Write(frame); err != nil {
					return
				}
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				for len(frames) == 0 {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if frames, err = dec.AppendFrames(frames[:0], buf[:n]); err != nil {
						return
					}
				}
				frames = frames[1:] // one reply per token, in order
				lat[i] = append(lat[i], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	return summarize(lat, time.Since(start)), nil
}
