//go:build linux

package cluster

import (
	"flag"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var (
	benchFlag     = flag.Bool("cluster.bench", false, "run TestClusterBench (make bench does)")
	benchDuration = flag.Duration("cluster.bench.duration", 2*time.Second, "length of one measurement")
	benchReps     = flag.Int("cluster.bench.reps", 3, "measurements of each kind per concurrency")
	benchProfile  = flag.String("cluster.bench.cpuprofile", "", "write CPU profiles of the handler node and of the bench process (front and load) to this directory")
	benchArgs     = flag.String("cluster.bench.args", "", "more arguments for the bench node, space-separated (for example --bench-conns 64 --bench-what tokens --grain-window 8)")
)

// TestClusterBench runs the benchmark of examples/cluster (--role bench):
// token round trips through a front node and a remote grain on a handler
// node, 1 and 64 connections, against Proto.Actor's own request/reply to the
// same grain between the same two processes, and against a plain crypto/tls
// echo (tokencat baseline, a third process: the bound that the TLS legs
// alone set), in the same run. It prints the ratios and the bound. Only with
// -cluster.bench (make bench).
func TestClusterBench(t *testing.T) {
	if !*benchFlag {
		t.Skip("run with -cluster.bench (make bench)")
	}
	e := newEnv(t, 2)
	var hArgs, bArgs []string
	if dir := *benchProfile; dir != "" {
		hArgs = []string{"--cpuprofile", filepath.Join(dir, "handler.prof")}
		bArgs = []string{"--cpuprofile", filepath.Join(dir, "bench.prof")}
	}
	ports := freePorts(t, 2)
	plain := "127.0.0.1:" + strconv.Itoa(ports[1])
	certs := filepath.Join(e.dir, "certs")
	echo := e.run("plain", tokencat.build(t), "baseline", "--protocol", "token/1", "--listen", plain,
		"--ca", filepath.Join(certs, "ca.crt"), "--cert", filepath.Join(certs, "server.crt"), "--key", filepath.Join(certs, "server.key"))
	t.Cleanup(func() { stop(t, []*node{echo}) })
	echo.waitLine(t, "listening on", 30*time.Second)
	e.start("handler", "h1", hArgs...)
	b := e.start("bench", "bench", append([]string{"--listen", "127.0.0.1:" + strconv.Itoa(ports[0]), "--bench-plain", plain,
		"--bench-duration", benchDuration.String(), "--bench-reps", strconv.Itoa(*benchReps), "--log-level", "warn"},
		append(bArgs, strings.Fields(*benchArgs)...)...)...)
	b.waitLine(t, "bench done", 30*time.Second+2*time.Duration(*benchReps)*2**benchDuration*3)
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, l := range b.lines {
		if strings.HasPrefix(l, "bench ") || strings.HasPrefix(l, "ratio ") || strings.HasPrefix(l, "bound ") {
			t.Log(l)
		}
	}
}
