package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokenserver/tokenserver/tlsio"
)

// A comparison case: one load, measured against both servers.
type compareCase struct {
	name    string
	mode    string
	size    int
	conns   int
	count   int64   // 0: run for the duration
	metric  string  // what is compared
	target  float64 // the ratio the issue asks for
	atMost  bool    // the ratio must be at most target (latency), else at least
	measure func(benchResult) float64
}

var compareCases = []compareCase{
	{name: "pipelined 16 B, 1 conn", mode: modePipeline, size: 16, conns: 1, metric: "tokens/s", target: 0.5,
		measure: func(r benchResult) float64 { return r.TokensPerSec }},
	{name: "pipelined 1 KiB, 1 conn", mode: modePipeline, size: 1 << 10, conns: 1, metric: "MB/s", target: 0.8,
		measure: func(r benchResult) float64 { return r.MBPerSec }},
	{name: "pipelined 64 KiB, 1 conn", mode: modePipeline, size: 64 << 10, conns: 1, metric: "MB/s", target: 0.8,
		measure: func(r benchResult) float64 { return r.MBPerSec }},
	{name: "pipelined 1 MiB, 1 conn", mode: modePipeline, size: 1 << 20, conns: 1, metric: "MB/s", target: 0.8,
		measure: func(r benchResult) float64 { return r.MBPerSec }},
	{name: "round trips 64 B, 64 conns", mode: modeRoundtrip, size: 64, conns: 64, metric: "tokens/s", target: 0.8,
		measure: func(r benchResult) float64 { return r.TokensPerSec }},
	{name: "round trips 64 B, 1 conn", mode: modeRoundtrip, size: 64, conns: 1, metric: "p50 latency µs", target: 1.5, atMost: true,
		measure: func(r benchResult) float64 { return r.Latency.P50 }},
	{name: "one 16 MiB token", mode: modePipeline, size: 16 << 20, conns: 1, count: 3, metric: "seconds per token", target: 0, atMost: true,
		measure: func(r benchResult) float64 { return r.Seconds / float64(r.Tokens) }},
}

// newCompareCommand returns "tokencat compare".
func newCompareCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "compare [flags]",
		Short: "measure the actors server against the plain TLS baseline, every target load, as ratios",
		Long: `Measures the project's actors.Server against a plain crypto/tls echo loop with
the same framing and no actors (the baseline), both started in this process on
127.0.0.1, with the same load generator as bench, for each load of the
performance targets: pipelined 16 B, 1 KiB, 64 KiB and 1 MiB tokens, round
trips over 64 connections and over one, and one 16 MiB token. Each load runs
--reps times against each server, alternating, and the medians are compared:
the machine is noisy, so speed is reported as a ratio measured in one run.
Prints one table; every reply is verified as in bench.`,
		Args: noArgs,
	}
	f := cmd.Flags()
	duration := f.Duration("duration", 2*time.Second, "length of each run `D`")
	reps := f.Int("reps", 3, "runs of each load against each server `N`")
	maxSize := f.Int("max-size", 0, "skip the loads whose tokens are larger than `BYTES` (0: none skipped)")
	cmd.RunE = func(*cobra.Command, []string) error {
		if *duration <= 0 || *reps <= 0 || *maxSize < 0 {
			return usageErrorf("--duration and --reps must be positive, --max-size not negative")
		}
		return runCompare(e, *duration, *reps, *maxSize)
	}
	return cmd
}

// runCompare measures every load of compareCases with tokens up to maxSize
// bytes (0: all), reps runs of d against each server, and prints the table.
func runCompare(e *env, d time.Duration, reps, maxSize int) error {
	certs, err := tlsio.GenerateDevCerts()
	if err != nil {
		return err
	}
	clientTLS, err := tlsio.ClientConfig(certs.ClientOptions())
	if err != nil {
		return err
	}
	serverTLS, err := tlsio.ServerConfig(certs.ServerOptions())
	if err != nil {
		return err
	}
	self, err := startSelfServer(certs)
	if err != nil {
		return err
	}
	base, err := startBaselineServer(serverTLS)
	if err != nil {
		return errors.Join(err, self.close())
	}
	cases := compareCases
	if maxSize > 0 {
		cases = slices.DeleteFunc(slices.Clone(cases), func(c compareCase) bool { return c.size > maxSize })
	}
	rows, err := runComparison(e, cases, clientTLS, self.addr, base.addr(), d, reps)
	err = errors.Join(err, self.close(), base.close())
	if err != nil {
		return err
	}
	writeComparison(e.stdout, rows, d, reps)
	return nil
}

type compareRow struct {
	c          compareCase
	base, self float64
	ratio      float64
	ok         bool
}

func runComparison(e *env, cases []compareCase, clientTLS *tls.Config, selfAddr, baseAddr string, d time.Duration, reps int) ([]compareRow, error) {
	var rows []compareRow
	for _, c := range cases {
		var baseVals, selfVals []float64
		for i := 0; i < reps; i++ {
			for _, t := range []struct {
				addr string
				vals *[]float64
			}{{baseAddr, &baseVals}, {selfAddr, &selfVals}} {
				cfg := benchConfig{addr: t.addr, tls: clientTLS, mode: c.mode, size: c.size, conns: c.conns,
					count: c.count, window: 1000, timeout: 30 * time.Second, target: t.addr}
				if c.count == 0 {
					cfg.duration = d
				}
				res, err := runBench(e.ctx, cfg)
				if err != nil {
					return nil, fmt.Errorf("%s against %s: %w", c.name, t.addr, err)
				}
				*t.vals = append(*t.vals, c.measure(res))
			}
		}
		row := compareRow{c: c, base: median(baseVals), self: median(selfVals)}
		if row.base > 0 {
			row.ratio = row.self / row.base
		}
		switch {
		case c.target == 0: // an absolute target: well under a second
			row.ok = row.self < 1
		case c.atMost:
			row.ok = row.ratio <= c.target
		default:
			row.ok = row.ratio >= c.target
		}
		rows = append(rows, row)
		fmt.Fprintf(e.stderr, "%-28s baseline %12.1f  tokenserver %12.1f  ratio %.2f\n", c.name, row.base, row.self, row.ratio)
	}
	return rows, nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func writeComparison(w io.Writer, rows []compareRow, d time.Duration, reps int) {
	fmt.Fprintf(w, "tokenserver (actors) vs plain crypto/tls echo, same load generator, medians of %d runs of %v\n\n", reps, d)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "load\tmetric\tbaseline\ttokenserver\tratio\ttarget\tmet")
	for _, r := range rows {
		target := fmt.Sprintf(">= %.2f", r.c.target)
		switch {
		case r.c.target == 0:
			target = "< 1 s"
		case r.c.atMost:
			target = fmt.Sprintf("<= %.2f", r.c.target)
		}
		met := "yes"
		if !r.ok {
			met = "NO"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.2f\t%s\t%s\n", r.c.name, r.c.metric, num(r.base), num(r.self), r.ratio, target, met)
	}
	tw.Flush()
}

func num(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 1:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.3f", v)
}
