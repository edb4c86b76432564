package main

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// compare runs every target load against the servers and prints one row
// per load with its ratios in each table, token/1's and token/2's; usage
// errors exit 2.
func TestCompareBinaryPrintsEveryLoad(t *testing.T) {
	t.Parallel()
	const maxSize = 64 << 10 // the larger loads take long under the race detector
	r := mustRun(t, 0, 5*time.Minute, "", "compare", "--duration", "100ms", "--reps", "1", "--max-size", "65536", "--no-node")
	for _, want := range []string{"load", "plain TLS", "tokenserver/TLS", "tokenserver/Node", "targets met:", "skipped: --no-node",
		"plain TLS t2", "tokenserver t2", "t2/t1", "t2/TLS t2", "token/2 targets met:"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("no %q in the output:\n%s", want, r.stdout)
		}
	}
	_, token2, ok := strings.Cut(r.stdout, "\ntoken/2: ")
	if !ok {
		t.Fatalf("no token/2 table:\n%s", r.stdout)
	}
	for _, c := range compareCases {
		shown := c.size <= maxSize
		if n := strings.Count(r.stdout, c.name); shown && n != 2 || !shown && n != 0 {
			t.Errorf("row %q shown %d times, want %v in each table:\n%s", c.name, n, shown, r.stdout)
		}
		if !shown {
			continue
		}
		// Its token/2 row has both token/2 servers' values and both ratios.
		row := tableRow(token2, c.name)
		if len(row) != 10 || slices.Contains([]string{row[2], row[3], row[4], row[7]}, "-") {
			t.Errorf("token/2 row %q: cells %q, want 10 with the values and ratios", c.name, row)
		}
	}
	mustRun(t, exitUsage, 30*time.Second, "", "compare", "--reps", "0")
	mustRun(t, exitUsage, 30*time.Second, "", "compare", "--warmup", "-1s")
	mustRun(t, exitUsage, 30*time.Second, "", "compare", "extra")
	r = mustRun(t, exitUsage, 30*time.Second, "", "compare", "--loads", "pipe-16B,nothing")
	if !strings.Contains(r.stderr, `no load "nothing" (ids: rt-64c, pipe-16B`) {
		t.Errorf("stderr %q", r.stderr)
	}
}

// tableRow returns the cells of the first row of table (tabwriter's output,
// cells 2 spaces apart at least) that starts with name, or nil.
func tableRow(table, name string) []string {
	for _, line := range strings.Split(table, "\n") {
		if strings.HasPrefix(line, name) {
			return regexp.MustCompile(` {2,}`).Split(strings.TrimSpace(line), -1)
		}
	}
	return nil
}

// The lines compare writes on stderr: the servers of a load, then one line
// per run with the server's and the load generator's process ids.
var (
	serversLine = regexp.MustCompile(`(?m)^(\S+) +servers: (.*)$`)
	serverPid   = regexp.MustCompile(`(plain TLS t2|tokenserver t2|plain TLS|tokenserver|Node) pid ([0-9]+)`)
	runLine     = regexp.MustCompile(`(?m)^(\S+) +1/1 +(plain TLS t2|tokenserver t2|plain TLS|tokenserver|Node) .* server pid ([0-9]+), bench pid ([0-9]+)$`)
)

// compare runs the plain TLS loop, tokenserver, the same two again for
// token/2 (unless --no-token2) and (when it is installed) the Node original
// each in a process of its own, and the load generator in others; it prints
// every ratio column, or the line that says why Node was skipped; and no
// process is left when it has exited.
func TestCompareRunsEachServerAndTheLoadInItsOwnProcess(t *testing.T) {
	t.Parallel()
	prof := filepath.Join(t.TempDir(), "prof")
	for _, nodeArgs := range [][]string{nil, {"--node-dir", t.TempDir(), "--cpuprofile", prof}, {"--node-dir", t.TempDir(), "--no-token2"}} {
		args := append([]string{"compare", "--duration", "100ms", "--reps", "1", "--loads", "pipelined 16 B"}, nodeArgs...)
		r := mustRun(t, 0, 2*time.Minute, "", args...)
		for _, want := range []string{"tokenserver/TLS", "tokenserver/Node", "pipelined 16 B, 1 connection", "targets met:"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("%v: no %q in the output:\n%s", nodeArgs, want, r.stdout)
			}
		}
		noToken2 := slices.Contains(nodeArgs, "--no-token2")
		if got := strings.Contains(r.stdout, "token/2 targets met:"); got == noToken2 {
			t.Errorf("%v: token/2 table shown: %v:\n%s", nodeArgs, got, r.stdout)
		}
		if noToken2 && !strings.Contains(r.stdout, "  token/2         skipped: --no-token2") {
			t.Errorf("--no-token2: no skip line:\n%s", r.stdout)
		}
		nodeSkipped := strings.Contains(r.stdout, "  Node            skipped: ")
		if nodeArgs != nil && (!nodeSkipped || !strings.Contains(r.stdout, "no echo-server.js in")) {
			t.Errorf("--node-dir without the echo server: no skip line:\n%s", r.stdout)
		}
		if strings.Contains(r.stdout, "round trips") || strings.Contains(r.stdout, "pipelined 1 KiB") {
			t.Errorf("--loads: more than the one load:\n%s", r.stdout)
		}

		m := serversLine.FindAllStringSubmatch(r.stderr, -1)
		if len(m) != 1 || m[0][1] != "pipe-16B" {
			t.Fatalf("%v: servers lines %q in stderr:\n%s", nodeArgs, m, r.stderr)
		}
		pids := map[int]string{}
		servers := map[string]int{}
		for _, s := range serverPid.FindAllStringSubmatch(m[0][2], -1) {
			pid, _ := strconv.Atoi(s[2])
			servers[s[1]] = pid
			pids[pid] = s[1]
		}
		want := 5
		if nodeSkipped {
			want--
		}
		if noToken2 {
			want -= 2
		}
		if len(servers) != want || len(pids) != want {
			t.Fatalf("%v: servers %v, want %d in processes of their own:\n%s", nodeArgs, servers, want, r.stderr)
		}
		if n := strings.Count(r.stderr, " warm-up "); n != want {
			t.Errorf("%v: %d warm-up runs, want %d:\n%s", nodeArgs, n, want, r.stderr)
		}
		runs := runLine.FindAllStringSubmatch(r.stderr, -1)
		if len(runs) != want {
			t.Fatalf("%v: %d runs, want %d:\n%s", nodeArgs, len(runs), want, r.stderr)
		}
		for _, run := range runs {
			server, _ := strconv.Atoi(run[3])
			bench, _ := strconv.Atoi(run[4])
			if servers[run[2]] != server {
				t.Errorf("run against %s: server pid %d, started as %d", run[2], server, servers[run[2]])
			}
			if other, ok := pids[bench]; ok {
				t.Errorf("run against %s: the load generator's pid %d is that of %s", run[2], bench, other)
			}
			pids[bench] = "bench"
		}
		for pid, what := range pids {
			waitFor(t, 10*time.Second, func() bool { return !alive(pid) }, what+" process left behind")
		}
	}
	for _, name := range []string{"tokenserver-pipe-16B.prof", "baseline-pipe-16B.prof", "tokenserver-t2-pipe-16B.prof", "baseline-t2-pipe-16B.prof"} {
		if st, err := os.Stat(filepath.Join(prof, name)); err != nil || st.Size() == 0 {
			t.Errorf("--cpuprofile: %s: %v", name, err)
		}
	}
}

// A signal stops compare, its servers and its load generator.
func TestCompareSIGTERMLeavesNoProcess(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tokencatBin, "compare", "--duration", "20s", "--reps", "1", "--loads", "rt-1c")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if serversLine.MatchString(sc.Text()) {
				lines <- sc.Text()
			}
		}
		close(lines)
	}()
	var line string
	select {
	case line = <-lines:
	case <-time.After(30 * time.Second):
		t.Fatal("compare started no servers within 30s")
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for range lines { // drain to the end, then wait
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitFailure {
		t.Errorf("compare after SIGTERM: %v, want exit status %d", err, exitFailure)
	}
	for _, s := range serverPid.FindAllStringSubmatch(line, -1) {
		pid, _ := strconv.Atoi(s[2])
		waitFor(t, 10*time.Second, func() bool { return !alive(pid) }, s[1]+" process left behind")
	}
}

func TestSelectCases(t *testing.T) {
	t.Parallel()
	ids := func(cs []compareCase) string {
		var s []string
		for _, c := range cs {
			s = append(s, c.id)
		}
		return strings.Join(s, ",")
	}
	for _, c := range []struct {
		list    string
		maxSize int
		want    string
	}{
		{"", 0, "rt-64c,pipe-16B,pipe-1KiB,pipe-64KiB,pipe-1MiB,rt-1c,one-16MiB"},
		{"", 1024, "rt-64c,pipe-16B,pipe-1KiB,rt-1c"},
		{"PIPE-16b", 0, "pipe-16B"},
		{"pipelined 16 B", 0, "pipe-16B"},
		{"one-16MiB, rt-64c", 0, "rt-64c,one-16MiB"}, // in the table's order
		{"pipelined 1", 1024, "pipe-16B,pipe-1KiB"},
	} {
		got, err := selectCases(c.list, c.maxSize)
		if err != nil || ids(got) != c.want {
			t.Errorf("selectCases(%q, %d) = %s, %v; want %s", c.list, c.maxSize, ids(got), err, c.want)
		}
	}
	for _, list := range []string{"none", "rt-64c,", "pipe-1MiB"} {
		if _, err := selectCases(list, 1024); err == nil {
			t.Errorf("selectCases(%q, 1024): no error", list)
		}
	}
}

func TestWriteComparisonVerdicts(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	rows := []compareRow{
		{c: compareCases[0], val: [numServers]float64{100, 90, 40}, have: [numServers]bool{true, true, true}},     // 0.90 met, 2.25x no target
		{c: compareCases[1], val: [numServers]float64{100, 50, 20}, have: [numServers]bool{true, true, true}},     // 0.50 NO, 2.50x NO
		{c: compareCases[3], val: [numServers]float64{100, 80, 2}, have: [numServers]bool{true, true, true}},      // 0.80 met, 40x no target
		{c: compareCases[5], val: [numServers]float64{10, 16, 0}, have: [numServers]bool{true, true, false}},      // 1.60 NO (latency)
		{c: compareCases[6], val: [numServers]float64{0.05, 0.5, 0}, have: [numServers]bool{true, true, false}},   // < 1 s met
		{c: compareCases[2], val: [numServers]float64{100, 100, 0}, have: [numServers]bool{true, true, false}},    // Node failed: NO
		{c: compareCases[4], val: [numServers]float64{0, 0, 0}, have: [numServers]bool{false, false, false}},      // nothing measured
		{c: compareCases[5], val: [numServers]float64{10, 15, 30}, have: [numServers]bool{true, true, true}},      // 1.50 met, 0.50x
		{c: compareCases[0], val: [numServers]float64{100, 200, 100}, have: [numServers]bool{true, true, true}},   // 2.00 met, 2x no target
		{c: compareCases[1], val: [numServers]float64{100, 60, 15}, have: [numServers]bool{true, true, true}},     // 0.60 NO, 4.00x met
		{c: compareCases[2], val: [numServers]float64{100, 79.9, 10}, have: [numServers]bool{true, true, true}},   // 0.80 (79.9) NO, 7.99x NO
		{c: compareCases[6], val: [numServers]float64{0.05, 1.5, 0}, have: [numServers]bool{true, true, false}},   // NO
		{c: compareCases[3], val: [numServers]float64{100, 80, 0}, have: [numServers]bool{true, true, false}},     // Node absent, no target
		{c: compareCases[4], val: [numServers]float64{100, 79, 0}, have: [numServers]bool{true, true, false}},     // NO
		{c: compareCases[0], val: [numServers]float64{100, 80, 50}, have: [numServers]bool{true, true, true}},     // 0.80 NO, 1.60x no target
		{c: compareCases[5], val: [numServers]float64{10, 12, 0}, have: [numServers]bool{true, false, false}},     // no ratio
		{c: compareCases[1], val: [numServers]float64{100, 60, 0}, have: [numServers]bool{false, true, true}},     // no TLS ratio, no Node value
		{c: compareCases[2], val: [numServers]float64{100, 100, 12.5}, have: [numServers]bool{true, true, true}},  // met, 8x met
		{c: compareCases[6], val: [numServers]float64{0.05, 0.99, 0}, have: [numServers]bool{true, false, false}}, // not measured
	}
	for i := range rows {
		r := &rows[i]
		for k, pair := range ratioServers {
			if r.have[pair[0]] && r.have[pair[1]] && r.val[pair[1]] > 0 {
				r.ratio[k], r.haveRatio[k] = r.val[pair[0]]/r.val[pair[1]], true
			}
		}
	}
	writeComparison(&out, rows, true)
	got := out.String()
	lines := strings.Split(strings.TrimSpace(got), "\n")
	verdicts := func(line string) string {
		var v []string
		for _, f := range strings.Fields(line) {
			if f == "met" || f == "NO" {
				v = append(v, f)
			}
		}
		return strings.Join(v, " ")
	}
	want := []string{
		"met", "NO NO", "met", "NO", "met", "met NO", "", "met", "met", "NO met", "NO NO", "NO", "met", "NO",
		"NO", "", "NO", "met met", "",
	}
	for i, w := range want {
		if g := verdicts(lines[1+i]); g != w {
			t.Errorf("row %d: verdicts %q, want %q:\n%s", i, g, w, lines[1+i])
		}
	}
	if !strings.Contains(got, "targets met: 10 of 21") {
		t.Errorf("no total, or a wrong one:\n%s", got)
	}
	for _, want := range []string{"2.25x", "40x", ">= 4x", ">= 0.90", ">= 0.80", "<= 1.50", "< 1 s"} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in:\n%s", want, got)
		}
	}
}

func TestWriteToken2ComparisonVerdicts(t *testing.T) {
	t.Parallel()
	// Values by server: plain TLS, tokenserver, Node, plain TLS t2, tokenserver t2.
	all := [numServers]bool{true, true, false, true, true}
	rows := []compareRow{
		{c: compareCases[0], val: [numServers]float64{0, 100, 0, 110, 100}, have: all},                             // 1.00 met, 0.91 met
		{c: compareCases[1], val: [numServers]float64{0, 100, 0, 100, 90}, have: all},                              // 0.90 NO, 0.90 met
		{c: compareCases[4], val: [numServers]float64{0, 100, 0, 100, 80}, have: all},                              // 0.80 no target, 0.80 NO
		{c: compareCases[5], val: [numServers]float64{0, 20, 0, 10, 11.7}, have: all},                              // latency: 1.17 met
		{c: compareCases[5], val: [numServers]float64{0, 20, 0, 10, 11.8}, have: all},                              // 1.18 NO
		{c: compareCases[6], val: [numServers]float64{0, 0.2, 0, 0.2, 0.3}, have: all},                             // 1.50 NO
		{c: compareCases[2], val: [numServers]float64{0, 100, 0, 0, 0}, have: [numServers]bool{}},                  // not measured
		{c: compareCases[3], val: [numServers]float64{0, 0, 0, 100, 90}, have: [numServers]bool{3: true, 4: true}}, // no t2/t1, 0.90 met
	}
	for i := range rows {
		r := &rows[i]
		for k, pair := range ratioServers {
			if r.have[pair[0]] && r.have[pair[1]] && r.val[pair[1]] > 0 {
				r.ratio[k], r.haveRatio[k] = r.val[pair[0]]/r.val[pair[1]], true
			}
		}
	}
	var out strings.Builder
	writeToken2Comparison(&out, rows)
	got := out.String()
	want := [][]string{
		{"1.00", ">= 1.00", "met", "0.91", ">= 0.85", "met"},
		{"0.90", ">= 1.00", "NO", "0.90", ">= 0.85", "met"},
		{"0.80", "-", "-", "0.80", ">= 0.85", "NO"},
		{"0.58", "-", "-", "1.17", "<= 1.18", "met"},
		{"0.59", "-", "-", "1.18", "<= 1.18", "NO"},
		{"1.50", "-", "-", "1.50", "<= 1.18", "NO"},
		{"-", ">= 1.00", "-", "-", ">= 0.85", "-"},
		{"-", ">= 1.00", "-", "0.90", ">= 0.85", "met"},
	}
	lines := strings.Split(got, "\n")
	i := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "load ") })
	if i < 0 || !strings.Contains(lines[i], "plain TLS t2  tokenserver t2  t2/t1") {
		t.Fatalf("no header:\n%s", got)
	}
	for k, w := range want {
		cells := regexp.MustCompile(` {2,}`).Split(strings.TrimSpace(lines[i+1+k]), -1)
		if len(cells) != 10 || !slices.Equal(cells[4:], w) {
			t.Errorf("row %d: cells %q, want ratios, targets and verdicts %q", k, cells, w)
		}
	}
	if !strings.Contains(got, "token/2 targets met: 5 of 9") {
		t.Errorf("no total, or a wrong one:\n%s", got)
	}
}

func TestPairedRatio(t *testing.T) {
	t.Parallel()
	// The machine slows down between rounds: the ratio within each round is 0.5.
	if r, ok := pairedRatio([]float64{50, 20, 40}, []float64{100, 40, 80}, 3); !ok || r != 0.5 {
		t.Errorf("pairedRatio = %v, %v; want 0.5", r, ok)
	}
	if r, ok := pairedRatio([]float64{3, 1, 2}, []float64{1, 1, 1}, 3); !ok || r != 2 {
		t.Errorf("pairedRatio = %v, %v; want the median 2", r, ok)
	}
	for _, c := range [][2][]float64{{{1, 2}, {1, 2, 3}}, {{1, 2, 3}, {1, 0, 3}}, {nil, nil}} {
		if _, ok := pairedRatio(c[0], c[1], 3); ok {
			t.Errorf("pairedRatio(%v, %v): a ratio", c[0], c[1])
		}
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 3}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}
