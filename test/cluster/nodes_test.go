//go:build linux

package cluster

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/tlsio"
)

// The harness: the example binary (examples/cluster) built once, nodes run
// as OS processes on loopback, their stdout lines watched, every process
// ended (SIGTERM, then SIGKILL) and waited for when the test ends. Children
// also get SIGKILL if the test process dies (Pdeathsig).

// refresh is the automanaged provider's polling interval in these tests
// (2 s by default): a dead handler node leaves the membership within about
// one interval. It sets the pace of every scenario here.
const refresh = 200 * time.Millisecond

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	binDir    string
)

// binary builds examples/cluster once for the package.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "tokenserver-cluster-test")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "cluster")
		cmd := exec.Command("go", "build", "-o", binPath, "github.com/tokenserver/tokenserver/examples/cluster")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			buildErr = fmt.Errorf("go build examples/cluster: %w\n%s", err, out.String())
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// freePorts returns n distinct free TCP ports on 127.0.0.1.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		_ = ln.Close()
	}
	return ports
}

// env is one cluster of node processes sharing certificates and a peer list.
type env struct {
	t         *testing.T
	certs     *tlsio.DevCerts // the token clients' and the front's (--certs)
	nodeCerts *tlsio.DevCerts // the nodes' own CA (--node-certs)
	dir       string
	peers     []string // health host:port of every node
	next      int      // next unused health port
	// plaintext runs the nodes with --plaintext-nodes instead of
	// --node-certs; set it before the first start.
	plaintext bool
	// logLevel is the nodes' --log-level ("info" from newEnv, so that a
	// failed test shows what Proto.Actor did); "" leaves the example's
	// default.
	logLevel string
	mu       sync.Mutex
	nodes    []*node
}

func newEnv(t *testing.T, nodes int) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), logLevel: "info"}
	for _, c := range []struct {
		certs **tlsio.DevCerts
		dir   string
	}{{&e.certs, "certs"}, {&e.nodeCerts, "node-certs"}} {
		certs, err := tlsio.GenerateDevCerts()
		if err != nil {
			t.Fatal(err)
		}
		if err := certs.WriteFiles(filepath.Join(e.dir, c.dir), false); err != nil {
			t.Fatal(err)
		}
		*c.certs = certs
	}
	for _, p := range freePorts(t, nodes) {
		e.peers = append(e.peers, "127.0.0.1:"+strconv.Itoa(p))
	}
	t.Cleanup(e.stopAll)
	return e
}

// node is one running process.
type node struct {
	name   string
	cmd    *exec.Cmd
	done   chan struct{} // closed when the process has exited
	stderr string        // file
	mu     sync.Mutex
	lines  []string
	cond   *sync.Cond
}

// start runs a node with the next health port; extra are more flags.
func (e *env) start(role, name string, extra ...string) *node {
	e.t.Helper()
	e.mu.Lock()
	health := e.peers[e.next]
	e.next++
	e.mu.Unlock()
	_, port, _ := net.SplitHostPort(health)
	args := append([]string{
		"--role", role, "--name", name, "--health-port", port,
		"--peers", strings.Join(e.peers, ","), "--certs", filepath.Join(e.dir, "certs"),
		"--refresh", refresh.String(),
	}, extra...)
	if e.logLevel != "" {
		args = append(args, "--log-level", e.logLevel)
	}
	if e.plaintext {
		args = append(args, "--plaintext-nodes")
	} else {
		args = append(args, "--node-certs", filepath.Join(e.dir, "node-certs"))
	}
	cmd := exec.Command(binary(e.t), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	n := &node{name: name, cmd: cmd, done: make(chan struct{}), stderr: filepath.Join(e.dir, name+".stderr")}
	n.cond = sync.NewCond(&n.mu)
	errf, err := os.Create(n.stderr)
	if err != nil {
		e.t.Fatal(err)
	}
	cmd.Stderr = errf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.mu.Lock()
	e.nodes = append(e.nodes, n)
	e.mu.Unlock()
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			n.mu.Lock()
			n.lines = append(n.lines, sc.Text())
			n.cond.Broadcast()
			n.mu.Unlock()
		}
		_ = cmd.Wait()
		_ = errf.Close()
		n.mu.Lock()
		close(n.done)
		n.cond.Broadcast()
		n.mu.Unlock()
	}()
	return n
}

// waitLine waits for a stdout line that contains s and returns it.
func (n *node) waitLine(t *testing.T, s string, within time.Duration) string {
	t.Helper()
	timer := time.AfterFunc(within, func() {
		n.mu.Lock()
		n.cond.Broadcast()
		n.mu.Unlock()
	})
	defer timer.Stop()
	deadline := time.Now().Add(within)
	n.mu.Lock()
	defer n.mu.Unlock()
	for {
		for _, l := range n.lines {
			if strings.Contains(l, s) {
				return l
			}
		}
		select {
		case <-n.done:
			t.Fatalf("node %s exited before printing %q; stdout:\n%s\nstderr:\n%s", n.name, s,
				strings.Join(n.lines, "\n"), n.tail())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s did not print %q within %v; stdout:\n%s\nstderr:\n%s", n.name, s, within,
				strings.Join(n.lines, "\n"), n.tail())
		}
		n.cond.Wait()
	}
}

// exited says whether the process has ended.
func (n *node) exited() bool {
	select {
	case <-n.done:
		return true
	default:
		return false
	}
}

// tail is the end of the node's stderr.
func (n *node) tail() string {
	b, _ := os.ReadFile(n.stderr)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// kill sends SIGKILL and waits for the process to be gone.
func (n *node) kill(t *testing.T) {
	t.Helper()
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-n.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("node %s still running 10 s after SIGKILL", n.name)
	}
}

// stopAll ends every node: SIGTERM, then SIGKILL for those still running
// after 5 s; it returns once every process has exited.
func (e *env) stopAll() {
	e.mu.Lock()
	nodes := append([]*node(nil), e.nodes...)
	e.mu.Unlock()
	for _, n := range nodes {
		_ = n.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, n := range nodes {
		select {
		case <-n.done:
		case <-time.After(5 * time.Second):
			e.t.Logf("node %s: no exit 5 s after SIGTERM: SIGKILL", n.name)
			_ = n.cmd.Process.Signal(syscall.SIGKILL)
			<-n.done
		}
		if e.t.Failed() {
			e.t.Logf("node %s stderr (end):\n%s", n.name, n.tail())
		}
	}
}
