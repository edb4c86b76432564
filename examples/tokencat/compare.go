package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokenserver/tokenserver/tlsio"
	"github.com/tokenserver/tokenserver/wire"
)

// A comparison case: one load, measured against every server.
type compareCase struct {
	id      string // short name, for --loads and profile files
	name    string
	mode    string
	size    int
	conns   int
	count   int64  // 0: run for the duration
	metric  string // what is compared
	lower   bool   // lower is better (latency, time)
	measure func(benchResult) float64
	vsTLS   ratioTarget // of tokenserver / plain TLS
	vsNode  ratioTarget // of tokenserver / Node
	under   float64     // when > 0, an absolute target: tokenserver's value below it
	noNode  string      // why the Node original does not run this load ("": it does)
	// token/2 (issues 25 and 27): tokenserver t2 / tokenserver (token/1),
	// and tokenserver t2 / plain TLS t2.
	vsToken1 ratioTarget
	vsTLS2   ratioTarget
}

// ratioTarget is what the performance issue asks of a ratio; the zero value
// asks nothing.
type ratioTarget struct {
	atLeast float64 // the ratio is at least this, when > 0
	atMost  float64 // the ratio is at most this, when > 0
}

// set reports whether t asks something.
func (t ratioTarget) set() bool { return t.atLeast > 0 || t.atMost > 0 }

// met reports whether ratio meets t.
func (t ratioTarget) met(ratio float64) bool {
	return (t.atLeast <= 0 || ratio >= t.atLeast) && (t.atMost <= 0 || ratio <= t.atMost)
}

// format writes t for the table, with suffix after the number ("x" for the
// Node column).
func (t ratioTarget) format(suffix string) string {
	switch {
	case t.atLeast > 0:
		return ">= " + fmtRatio(t.atLeast, suffix)
	case t.atMost > 0:
		return "<= " + fmtRatio(t.atMost, suffix)
	}
	return "-"
}

// The token/2 targets: not slower than token/1 on the loads issue 25 names,
// and at least 0.85 of the plain token/2 loop on every load (issue 27: its
// value at most 1/0.85 of the loop's where lower is better).
var (
	notSlower      = ratioTarget{atLeast: 1}
	token2Limit    = ratioTarget{atLeast: 0.85}
	token2LimitLow = ratioTarget{atMost: 1 / 0.85}
)

func tokensPerSec(r benchResult) float64 { return r.TokensPerSec }
func mbPerSec(r benchResult) float64     { return r.MBPerSec }

// compareCases are the loads of the performance targets (issue 27's, third
// round), in the order, then the one-connection latency and the
// largest token. At 64 connections the Node column has no target: Node uses
// one core and the load generator the other, so it is read against the
// plain loop.
var compareCases = []compareCase{
	{id: "rt-64c", name: "64 connections, 64 B round trips", mode: modeRoundtrip, size: 64, conns: 64,
		metric: "tokens/s", measure: tokensPerSec, vsTLS: ratioTarget{atLeast: 0.9},
		vsToken1: notSlower, vsTLS2: token2Limit},
	{id: "pipe-16B", name: "pipelined 16 B, 1 connection", mode: modePipeline, size: 16, conns: 1,
		metric: "tokens/s", measure: tokensPerSec, vsTLS: ratioTarget{atLeast: 0.8}, vsNode: ratioTarget{atLeast: 4},
		vsToken1: notSlower, vsTLS2: token2Limit},
	{id: "pipe-1KiB", name: "pipelined 1 KiB, 1 connection", mode: modePipeline, size: 1 << 10, conns: 1,
		metric: "MB/s", measure: mbPerSec, vsTLS: ratioTarget{atLeast: 0.8}, vsNode: ratioTarget{atLeast: 8},
		vsToken1: notSlower, vsTLS2: token2Limit},
	{id: "pipe-64KiB", name: "pipelined 64 KiB, 1 connection", mode: modePipeline, size: 64 << 10, conns: 1,
		metric: "MB/s", measure: mbPerSec, vsTLS: ratioTarget{atLeast: 0.8},
		vsToken1: notSlower, vsTLS2: token2Limit},
	{id: "pipe-1MiB", name: "pipelined 1 MiB, 1 connection", mode: modePipeline, size: 1 << 20, conns: 1,
		metric: "MB/s", measure: mbPerSec, vsTLS: ratioTarget{atLeast: 0.8}, vsTLS2: token2Limit},
	{id: "rt-1c", name: "64 B round trips, 1 connection", mode: modeRoundtrip, size: 64, conns: 1,
		metric: "p50 latency µs", lower: true, measure: func(r benchResult) float64 { return r.Latency.P50 },
		vsTLS: ratioTarget{atMost: 1.5}, vsTLS2: token2LimitLow},
	{id: "one-16MiB", name: "one 16 MiB token, 1 connection", mode: modePipeline, size: 16 << 20, conns: 1, count: 3,
		metric: "s per token", lower: true, measure: func(r benchResult) float64 { return r.Seconds / float64(r.Tokens) },
		under: 1, noNode: "the original takes about 11 s per 16 MiB token", vsTLS2: token2LimitLow},
}

// The servers compare measures, in the order they take turns; the columns of
// the tables. Each is a process of its own; the token/2 ones run the same
// command as their token/1 counterparts, and the load generator picks the
// protocol (bench --protocol).
const (
	srvTLS   = iota // tokencat baseline, token/1
	srvSelf         // tokencat serve --echo, token/1
	srvNode         // the Node original (token/1)
	srvTLS2         // tokencat baseline, token/2
	srvSelf2        // tokencat serve --echo, token/2
	numServers
)

// serverNames are the column names of the servers.
var serverNames = [numServers]string{"plain TLS", "tokenserver", "Node", "plain TLS t2", "tokenserver t2"}

// serverProtocols are the protocols the load generator speaks to each.
var serverProtocols = [numServers]string{
	wire.ProtocolToken1, wire.ProtocolToken1, wire.ProtocolToken1, wire.ProtocolToken2, wire.ProtocolToken2,
}

// token2Server reports whether server i is one of the token/2 columns.
func token2Server(i int) bool { return serverProtocols[i] == wire.ProtocolToken2 }

// The ratios compare reports, each of two servers' values.
const (
	ratioTLS  = iota // tokenserver / plain TLS
	ratioNode        // tokenserver / Node
	ratioT2T1        // tokenserver t2 / tokenserver: token/2 against token/1
	ratioTLS2        // tokenserver t2 / plain TLS t2
	numRatios
)

// ratioServers are the two servers of each ratio: its numerator, then its
// denominator.
var ratioServers = [numRatios][2]int{
	ratioTLS:  {srvSelf, srvTLS},
	ratioNode: {srvSelf, srvNode},
	ratioT2T1: {srvSelf2, srvSelf},
	ratioTLS2: {srvSelf2, srvTLS2},
}

// compareOptions are the flags of compare.
type compareOptions struct {
	duration   time.Duration
	reps       int
	warmup     time.Duration
	maxSize    int
	loads      string
	nodeDir    string
	noNode     bool
	noToken2   bool
	cpuProfile string
}

// newCompareCommand returns "tokencat compare".
func newCompareCommand(e *env) *cobra.Command {
	var o compareOptions
	var loads strings.Builder
	for _, c := range compareCases {
		fmt.Fprintf(&loads, "\n  %-11s %s (%s)", c.id, c.name, c.metric)
	}
	cmd := &cobra.Command{
		Use:   "compare [flags]",
		Short: "measure the actors server against a plain TLS echo loop and the Node original, every target load, as ratios",
		Long: `Measures tokenserver against two references on 127.0.0.1, for each load of the
performance targets, and prints two tables. token/1: the medians, the ratios
tokenserver / plain TLS and tokenserver / Node, each against its target (met or
NO). token/2: the medians, the ratios tokenserver t2 / tokenserver (token/2
against token/1 on the same server) and tokenserver t2 / plain TLS t2 (against
the plain loop that speaks token/2, its limit), each against its target.

  plain TLS       "tokencat baseline": a plain crypto/tls echo loop with the
                  same framing and no actors, the reference point
  tokenserver     "tokencat serve --echo": the actors server under test
  Node            the original npm token-server (test/interop/echo-server.js
                  under node, with the package test/interop pins); skipped with
                  one line when node or the package is missing (make
                  interop-deps)
  plain TLS t2    "tokencat baseline" spoken to in token/2: the same loop
                  echoing token/2's DATA frames as they come (it answers
                  HELLO and acknowledges what it echoes)
  tokenserver t2  "tokencat serve --echo" spoken to in token/2

The load generator speaks token/1 to the first three ("bench --protocol
token/1") and token/2 to the last two ("--protocol token/2"); --no-token2
leaves those two out.

Each server runs in its own process, started from this binary (or node) with
development certificates written to a temporary directory, fresh for each load.
The load generator is a third process, "tokencat bench --addr ... --json", the
same for every server, every reply verified; compare itself only starts, stops
and reads the others. Each server first gets an unmeasured run of --warmup
(Node's compiler, Go's heap); then each load runs --reps times against each
server, the servers taking turns (plain TLS, tokenserver, Node, plain TLS t2,
tokenserver t2, plain TLS, ...). The table shows the median of each server's runs, and as each ratio the
median of the ratios within each round: the machine is noisy, so speed is
reported as ratios measured in one run, of runs close in time. Progress, one line per run with the
process ids, goes to stderr.

Loads (--loads takes ids or names, comma-separated; a name may be cut short):` + loads.String() + `

--cpuprofile DIR writes a CPU profile of every tokenserver and plain TLS
process to DIR, one per load (tokenserver-LOAD.prof, baseline-LOAD.prof, and
for token/2 tokenserver-t2-LOAD.prof, baseline-t2-LOAD.prof); read one with
"go tool pprof -top tokencat DIR/tokenserver-rt-64c.prof".`,
		Args: noArgs,
	}
	f := cmd.Flags()
	f.DurationVar(&o.duration, "duration", 2*time.Second, "length of each run `D`")
	f.IntVar(&o.reps, "reps", 3, "runs of each load against each server `N`")
	f.DurationVar(&o.warmup, "warmup", 500*time.Millisecond, "an unmeasured run of `D` (at most --duration) against each server first (0: none)")
	f.IntVar(&o.maxSize, "max-size", 0, "skip the loads whose tokens are larger than `BYTES` (0: none skipped)")
	f.StringVar(&o.loads, "loads", "", "run only the loads `LIST` (ids or names, comma-separated; empty: all)")
	f.StringVar(&o.nodeDir, "node-dir", "", "`DIR` with echo-server.js and node_modules/token-server (default: test/interop of the module around the working directory)")
	f.BoolVar(&o.noNode, "no-node", false, "do not measure the Node original")
	f.BoolVar(&o.noToken2, "no-token2", false, "do not measure token/2 (no plain TLS t2, no tokenserver t2, no token/2 table)")
	f.StringVar(&o.cpuProfile, "cpuprofile", "", "write CPU profiles of the Go servers to `DIR`, one per load and server")
	cmd.RunE = func(*cobra.Command, []string) error {
		if o.duration <= 0 || o.reps <= 0 || o.maxSize < 0 || o.warmup < 0 {
			return usageErrorf("--duration and --reps must be positive, --max-size and --warmup not negative")
		}
		cases, err := selectCases(o.loads, o.maxSize)
		if err != nil {
			return err
		}
		return runCompare(e, &o, cases)
	}
	return cmd
}

// selectCases returns the loads of compareCases that list names (all when
// empty) with tokens up to maxSize bytes (0: all).
func selectCases(list string, maxSize int) ([]compareCase, error) {
	cases := slices.Clone(compareCases)
	if strings.TrimSpace(list) != "" {
		want := make([]bool, len(cases))
		for _, item := range strings.Split(list, ",") {
			item = strings.ToLower(strings.TrimSpace(item))
			found := false
			for i, c := range cases {
				if item != "" && (item == strings.ToLower(c.id) || strings.HasPrefix(strings.ToLower(c.name), item)) {
					want[i], found = true, true
				}
			}
			if !found {
				ids := make([]string, len(cases))
				for i, c := range cases {
					ids[i] = c.id
				}
				return nil, usageErrorf("--loads: no load %q (ids: %s)", item, strings.Join(ids, ", "))
			}
		}
		i := 0
		cases = slices.DeleteFunc(cases, func(compareCase) bool { i++; return !want[i-1] })
	}
	if maxSize > 0 {
		cases = slices.DeleteFunc(cases, func(c compareCase) bool { return c.size > maxSize })
	}
	if len(cases) == 0 {
		return nil, usageErrorf("no load left to run (--loads, --max-size)")
	}
	return cases, nil
}

// comparer runs the comparison: the servers, the load generator, the notes.
type comparer struct {
	e        *env
	o        *compareOptions
	exe      string   // this binary
	certDir  string   // the development certificates
	node     *nodeRef // nil: the Node original is not measured
	notes    []string // Node failures, shown under the table
	profiles []string
}

// compareRow is the outcome of one load.
type compareRow struct {
	c    compareCase
	val  [numServers]float64 // medians
	have [numServers]bool    // measured
	// ratio[k] is ratio k of ratioServers: the median of the ratios of the
	// runs of one round, so that the machine's slow changes cancel out.
	ratio     [numRatios]float64
	haveRatio [numRatios]bool
}

// pairedRatio is the median over rounds of self[k] / ref[k], when both have
// every round and ref is positive.
func pairedRatio(self, ref []float64, rounds int) (float64, bool) {
	if len(self) != rounds || len(ref) != rounds || rounds == 0 {
		return 0, false
	}
	r := make([]float64, rounds)
	for k := range rounds {
		if ref[k] <= 0 {
			return 0, false
		}
		r[k] = self[k] / ref[k]
	}
	return median(r), true
}

// runCompare measures cases and prints the table.
func runCompare(e *env, o *compareOptions, cases []compareCase) (err error) {
	ctx, stop := signal.NotifyContext(e.ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this binary to run its servers: %w", err)
	}
	tmp, err := os.MkdirTemp("", "tokencat-compare-")
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, os.RemoveAll(tmp)) }()
	certs, err := tlsio.GenerateDevCerts()
	if err != nil {
		return err
	}
	c := &comparer{e: e, o: o, exe: exe, certDir: filepath.Join(tmp, "certs")}
	if err := certs.WriteFiles(c.certDir, false); err != nil {
		return err
	}
	if o.cpuProfile != "" {
		if o.cpuProfile, err = filepath.Abs(o.cpuProfile); err != nil {
			return err
		}
		if err := os.MkdirAll(o.cpuProfile, 0o755); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
	}
	var nodeSkipped error
	switch {
	case o.noNode:
		nodeSkipped = errors.New("--no-node")
	default:
		c.node, nodeSkipped = findNode(ctx, o.nodeDir)
	}

	w := e.stdout
	fmt.Fprintf(w, "tokenserver vs a plain crypto/tls echo loop and the Node original, %d CPUs\n", runtime.NumCPU())
	fmt.Fprintf(w, "  plain TLS       tokencat baseline (crypto/tls, same framing, no actors)\n")
	fmt.Fprintf(w, "  tokenserver     tokencat serve --echo\n")
	if c.node != nil {
		fmt.Fprintf(w, "  Node            node %s, echo-server.js on token-server %s (%s)\n", c.node.version, c.node.pkgVersion, c.node.dir)
	} else {
		fmt.Fprintf(w, "  Node            skipped: %v\n", nodeSkipped)
	}
	if !o.noToken2 {
		fmt.Fprintf(w, "  plain TLS t2    tokencat baseline spoken to in token/2 (DATA frames echoed as they come, ACKs)\n")
		fmt.Fprintf(w, "  tokenserver t2  tokencat serve --echo spoken to in token/2\n")
		fmt.Fprintf(w, "(the load generator speaks token/1 to the first three, token/2 to the t2 ones)\n")
	} else {
		fmt.Fprintf(w, "  token/2         skipped: --no-token2\n")
	}
	fmt.Fprintf(w, "each server in its own process, load from a tokencat bench process, servers taking turns;\n")
	fmt.Fprintf(w, "%d round(s) of one run of %v against each", o.reps, o.duration)
	for _, cc := range cases {
		if cc.count > 0 {
			fmt.Fprintf(w, " (%s: of %d tokens)", cc.id, cc.count)
		}
	}
	if o.warmup > 0 {
		fmt.Fprintf(w, ", after a warm-up run of %v", min(o.warmup, o.duration))
	}
	fmt.Fprint(w, ";\nvalues: medians of the runs; ratios: medians of the ratios within each round\n\n")

	var rows []compareRow
	for _, cc := range cases {
		row, err := c.measure(ctx, cc)
		if err != nil {
			if ctx.Err() != nil {
				return errors.New("interrupted: every server and load generator stopped")
			}
			return err
		}
		rows = append(rows, row)
	}
	writeComparison(w, rows, c.node != nil)
	if !o.noToken2 {
		writeToken2Comparison(w, rows)
	}
	for _, n := range c.notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	if len(c.profiles) > 0 {
		fmt.Fprintf(w, "CPU profiles in %s; read one with: go tool pprof -top %s\n", o.cpuProfile, c.profiles[0])
	}
	return nil
}

// measure runs one load: it starts the servers, runs the load generator
// against them in turn, o.reps times, stops them, and returns the medians.
func (c *comparer) measure(ctx context.Context, cc compareCase) (row compareRow, err error) {
	row.c = cc
	var procs [numServers]*serverProc
	defer func() {
		for i, p := range procs {
			if p == nil {
				continue
			}
			if serr := p.stop(); serr != nil && ctx.Err() == nil { // on a signal, they may have had it too
				if i == srvNode {
					c.note(fmt.Sprintf("%s: %v", cc.id, serr))
				} else {
					err = errors.Join(err, serr)
				}
			}
		}
	}()
	for i := range numServers {
		if i == srvNode && (c.node == nil || cc.noNode != "") || token2Server(i) && c.o.noToken2 {
			continue
		}
		p, err := c.startServer(i, cc)
		if err != nil {
			if i == srvNode {
				c.note(fmt.Sprintf("%s: the Node original did not start: %v", cc.id, err))
				continue
			}
			return row, err
		}
		procs[i] = p
	}
	var started []string
	for _, p := range procs {
		if p != nil {
			started = append(started, fmt.Sprintf("%s pid %d", p.name, p.pid()))
		}
	}
	fmt.Fprintf(c.e.stderr, "%-10s servers: %s\n", cc.id, strings.Join(started, ", "))
	var vals [numServers][]float64
	// Round 0 warms every server up (Node's compiler, Go's heap), unmeasured;
	// a load of a count of tokens has none.
	first := 1
	if c.o.warmup > 0 && cc.count == 0 {
		first = 0
	}
	for rep := first; rep <= c.o.reps; rep++ {
		d := c.o.duration
		if rep == 0 {
			d = min(c.o.warmup, c.o.duration)
		}
		for i, p := range procs {
			if p == nil {
				continue
			}
			res, pid, err := c.bench(ctx, p.addr, cc, d, serverProtocols[i])
			if err != nil {
				err = fmt.Errorf("%s against %s (pid %d, bench pid %d): %w", cc.name, p.name, p.pid(), pid, err)
				if i != srvNode || ctx.Err() != nil {
					return row, errors.Join(err, p.stderrError())
				}
				c.note(err.Error())
				_ = p.stop()
				procs[i] = nil
				continue
			}
			v := cc.measure(res)
			round := fmt.Sprintf("%d/%d", rep, c.o.reps)
			if rep == 0 {
				round = "warm-up"
			} else {
				vals[i] = append(vals[i], v)
			}
			fmt.Fprintf(c.e.stderr, "%-10s %-7s %-14s %10s %-14s server pid %d, bench pid %d\n",
				cc.id, round, p.name, num(v), cc.metric, p.pid(), pid)
		}
	}
	for i := range numServers {
		if len(vals[i]) == c.o.reps {
			row.val[i], row.have[i] = median(vals[i]), true
		}
	}
	for k, pair := range ratioServers {
		row.ratio[k], row.haveRatio[k] = pairedRatio(vals[pair[0]], vals[pair[1]], c.o.reps)
	}
	return row, nil
}

// note adds a line under the table and says it on stderr at once.
func (c *comparer) note(s string) {
	c.notes = append(c.notes, s)
	fmt.Fprintf(c.e.stderr, "note: %s\n", s)
}

// startServer starts server i (srvTLS, srvSelf, srvNode, srvTLS2 or
// srvSelf2) for load cc. The caller stops it, also on a signal: it gets
// SIGTERM, not SIGKILL.
func (c *comparer) startServer(i int, cc compareCase) (*serverProc, error) {
	cert := func(name string) string { return filepath.Join(c.certDir, name) }
	if i == srvNode {
		cmd := exec.Command(c.node.node, "echo-server.js",
			"--key", cert("server.key"), "--cert", cert("server.crt"), "--ca", cert("ca.crt"))
		cmd.Dir = c.node.dir
		return startServerProc(serverNames[i], cmd, func(line string) (string, bool) {
			port, ok := strings.CutPrefix(line, "listening ")
			if _, err := strconv.Atoi(port); !ok || err != nil {
				return "", false
			}
			return "127.0.0.1:" + port, true
		})
	}
	args := []string{"baseline"}
	profile := "baseline"
	if i == srvSelf || i == srvSelf2 {
		args, profile = []string{"serve", "--echo"}, "tokenserver"
	}
	if token2Server(i) {
		profile += "-t2"
	}
	args = append(args, "--listen", "127.0.0.1:0", "--ca", cert("ca.crt"), "--cert", cert("server.crt"), "--key", cert("server.key"))
	if c.o.cpuProfile != "" {
		file := filepath.Join(c.o.cpuProfile, profile+"-"+cc.id+".prof")
		args = append(args, "--cpuprofile", file)
		if i == srvSelf || i == srvSelf2 {
			c.profiles = append(c.profiles, file)
		}
	}
	return startServerProc(serverNames[i], exec.Command(c.exe, args...), func(line string) (string, bool) {
		return strings.CutPrefix(line, "listening on ")
	})
}

// bench runs "tokencat bench --json" against addr with load cc for d (or
// for the load's count of tokens), speaking protocol, in a process of its
// own and returns its result and process id.
func (c *comparer) bench(ctx context.Context, addr string, cc compareCase, d time.Duration, protocol string) (benchResult, int, error) {
	cert := func(name string) string { return filepath.Join(c.certDir, name) }
	args := []string{"bench", "--addr", addr, "--protocol", protocol,
		"--ca", cert("ca.crt"), "--cert", cert("client.crt"), "--key", cert("client.key"),
		"--mode", cc.mode, "--size", strconv.Itoa(cc.size), "--conns", strconv.Itoa(cc.conns),
		"--window", "1000", "--timeout", "30s", "--json"}
	limit := d + 2*time.Minute // connecting, and the last replies
	if cc.count > 0 {
		args = append(args, "--count", strconv.FormatInt(cc.count, 10))
		limit = 5 * time.Minute
	} else {
		args = append(args, "--duration", d.String())
	}
	bctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := exec.CommandContext(bctx, c.exe, args...)
	out, err := runChild(bctx, cmd)
	pid := 0
	if cmd.Process != nil {
		pid = cmd.Process.Pid
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			err = fmt.Errorf("tokencat bench did not finish within %v", limit)
		}
		return benchResult{}, pid, err
	}
	var res benchResult
	if err := json.Unmarshal(out, &res); err != nil {
		return benchResult{}, pid, fmt.Errorf("tokencat bench printed %q: %w", out, err)
	}
	if res.Tokens == 0 {
		return benchResult{}, pid, errors.New("no token echoed")
	}
	if res.Protocol != protocol {
		return benchResult{}, pid, fmt.Errorf("tokencat bench spoke %q, not %s", res.Protocol, protocol)
	}
	return res, pid, nil
}

// median returns the middle value of v (the upper one of an even count), or
// 0 for none.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// writeComparison prints the token/1 table of rows; withNode says whether
// the Node original was measured at all.
func writeComparison(w io.Writer, rows []compareRow, withNode bool) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	writeCells(tw, "load", "metric", "plain TLS", "tokenserver", "Node", "tokenserver/TLS", "target", "met", "tokenserver/Node", "target", "met")
	var t tally
	for _, r := range rows {
		c := r.c
		tls := t.ratioCells(r, ratioTLS, c.vsTLS, "") // ratio, target, met
		if c.under > 0 {
			tls[1], tls[2] = fmt.Sprintf("< %g s", c.under), "-"
			if r.have[srvSelf] {
				tls[2] = t.verdict(r.val[srvSelf] < c.under)
			}
		}
		node := t.ratioCells(r, ratioNode, c.vsNode, "x")
		if !r.haveRatio[ratioNode] && c.vsNode.set() && withNode {
			node[2] = t.verdict(false) // the Node run failed: see the notes
		}
		writeCells(tw, slices.Concat([]string{c.name, c.metric, r.cell(srvTLS), r.cell(srvSelf), r.cell(srvNode)}, tls, node)...)
	}
	tw.Flush()
	fmt.Fprintf(w, "\ntargets met: %d of %d", t.met, t.targets)
	if !withNode {
		fmt.Fprint(w, " (the Node targets were not measured)")
	}
	fmt.Fprintln(w)
}

// writeToken2Comparison prints the token/2 table of rows: the token/2
// servers' medians, token/2 against token/1 on the same server, and against
// the plain loop that speaks token/2.
func writeToken2Comparison(w io.Writer, rows []compareRow) {
	fmt.Fprint(w, "\ntoken/2: t2/t1 is tokenserver t2 / tokenserver (token/2 against token/1 on the same server),\n"+
		"t2/TLS t2 is tokenserver t2 / plain TLS t2 (against the plain loop that speaks token/2)\n")
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	writeCells(tw, "load", "metric", "plain TLS t2", "tokenserver t2", "t2/t1", "target", "met", "t2/TLS t2", "target", "met")
	var t tally
	for _, r := range rows {
		cells := []string{r.c.name, r.c.metric, r.cell(srvTLS2), r.cell(srvSelf2)}
		cells = append(cells, t.ratioCells(r, ratioT2T1, r.c.vsToken1, "")...)
		cells = append(cells, t.ratioCells(r, ratioTLS2, r.c.vsTLS2, "")...)
		writeCells(tw, cells...)
	}
	tw.Flush()
	fmt.Fprintf(w, "\ntoken/2 targets met: %d of %d\n", t.met, t.targets)
}

// tally counts the targets of a table and those met.
type tally struct{ met, targets int }

// verdict counts a target and says whether it was met.
func (t *tally) verdict(ok bool) string {
	t.targets++
	if ok {
		t.met++
		return "met"
	}
	return "NO"
}

// ratioCells are the cells of ratio k of r against target: the ratio (with
// suffix), the target and the verdict, "-" where there is none.
func (t *tally) ratioCells(r compareRow, k int, target ratioTarget, suffix string) []string {
	ratio, met := "-", "-"
	if r.haveRatio[k] {
		ratio = fmtRatio(r.ratio[k], suffix)
		if target.set() {
			met = t.verdict(target.met(r.ratio[k]))
		}
	}
	return []string{ratio, target.format(suffix), met}
}

// writeCells writes one row of a table to tw.
func writeCells(tw io.Writer, cells ...string) {
	fmt.Fprintln(tw, strings.Join(cells, "\t"))
}

// cell is server i's median in r, or "-".
func (r compareRow) cell(i int) string {
	if !r.have[i] {
		return "-"
	}
	return num(r.val[i])
}

// fmtRatio formats a ratio with suffix ("x" against Node).
func fmtRatio(r float64, suffix string) string {
	if r >= 10 {
		return fmt.Sprintf("%.0f%s", r, suffix)
	}
	if suffix != "" && r == float64(int(r)) {
		return fmt.Sprintf("%.0f%s", r, suffix)
	}
	return fmt.Sprintf("%.2f%s", r, suffix)
}

// num formats a measured value with a precision that suits its size.
func num(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 1:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.3f", v)
}
