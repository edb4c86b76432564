//go:build linux

package cluster

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
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

	"github.com/tokenserver/tokenserver/actors"
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

// program is a binary built once for the package, into binDir.
type program struct {
	name string   // file name
	dir  string   // where go build runs (a module of its own, or this one)
	pkg  string   // what it builds
	env  []string // more environment for go build
	once sync.Once
	path string
	err  error
}

var (
	binDirOnce sync.Once
	binDir     string
	binDirErr  error
	// The example, from this module.
	example = &program{name: "cluster", dir: ".", pkg: "github.com/tokenserver/tokenserver/examples/cluster"}
	// tokencat, for its plain TLS echo (TestClusterBench).
	tokencat = &program{name: "tokencat", dir: ".", pkg: "github.com/tokenserver/tokenserver/examples/tokencat"}
)

// build builds p once (go build -o) and returns its path.
func (p *program) build(t *testing.T) string {
	t.Helper()
	binDirOnce.Do(func() { binDir, binDirErr = os.MkdirTemp("", "tokenserver-cluster-test") })
	if binDirErr != nil {
		t.Fatal(binDirErr)
	}
	p.once.Do(func() {
		p.path = filepath.Join(binDir, p.name)
		cmd := exec.Command("go", "build", "-o", p.path, p.pkg)
		cmd.Dir = p.dir
		cmd.Env = append(os.Environ(), p.env...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		began := time.Now()
		if err := cmd.Run(); err != nil {
			p.err = fmt.Errorf("go build %s (in %s): %w\n%s", p.pkg, p.dir, err, out.String())
			return
		}
		t.Logf("built %s in %v", p.name, time.Since(began).Round(time.Millisecond))
	})
	if p.err != nil {
		t.Fatal(p.err)
	}
	return p.path
}

// freePorts returns n distinct free TCP ports on 127.0.0.1, none of them
// one it returned before in this test process. A port is free only until
// the node given it binds it, so they are taken below the system's
// ephemeral range (ip_local_port_range): there no other socket gets one
// meanwhile, as a listener on port 0 or a connection's local port would in
// the ephemeral range (a front once got the remote port of a handler
// started a moment before, another once a port another test process had
// taken, and each failed with "address already in use").
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	givenPorts.Lock()
	defer givenPorts.Unlock()
	low, high := fixedPortRange()
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}()
	for tries := 0; len(ports) < n; tries++ {
		if tries == 1000 {
			t.Fatalf("no %d free ports on 127.0.0.1 in [%d, %d) not given before", n, low, high)
		}
		port := low + rand.IntN(high-low)
		if givenPorts.m[port] {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue // taken
		}
		lns = append(lns, ln) // held until all n are found: no repeats among them
		ports = append(ports, port)
	}
	for _, p := range ports {
		givenPorts.m[p] = true
	}
	return ports
}

// fixedPortRange is where freePorts takes ports: from 20000 up to the
// start of the ephemeral range, or [20000, 32768) (Linux's default start)
// when the range cannot be read or leaves too little below it.
func fixedPortRange() (low, high int) {
	low, high = 20000, 32768
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return low, high
	}
	if f := strings.Fields(string(b)); len(f) == 2 {
		if start, err := strconv.Atoi(f[0]); err == nil && start-low >= 4096 {
			high = start
		}
	}
	return low, high
}

// givenPorts are the ports freePorts returned.
var givenPorts = struct {
	sync.Mutex
	m map[int]bool
}{m: map[int]bool{}}

// env is one cluster of node processes sharing certificates and a
// membership: a peer list (automanaged), or an etcd process (etcd != nil).
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
	etcd     *etcdServer
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

// start runs a node, with the next health port (automanaged) or the etcd
// server's flags; extra are more flags.
func (e *env) start(role, name string, extra ...string) *node {
	e.t.Helper()
	args := []string{"--role", role, "--name", name, "--certs", filepath.Join(e.dir, "certs"), "--refresh", refresh.String()}
	if e.etcd != nil {
		args = append(args, e.etcd.flags()...)
	} else {
		e.mu.Lock()
		health := e.peers[e.next]
		e.next++
		e.mu.Unlock()
		_, port, _ := net.SplitHostPort(health)
		args = append(args, "--health-port", port, "--peers", strings.Join(e.peers, ","))
	}
	args = append(args, extra...)
	if e.logLevel != "" {
		args = append(args, "--log-level", e.logLevel)
	}
	if e.plaintext {
		args = append(args, "--plaintext-nodes")
	} else {
		args = append(args, "--node-certs", filepath.Join(e.dir, "node-certs"))
	}
	n := e.run(name, example.build(e.t), args...)
	e.mu.Lock()
	e.nodes = append(e.nodes, n)
	e.mu.Unlock()
	return n
}

// run starts a process, its stdout lines watched, its stderr in a file.
func (e *env) run(name, path string, args ...string) *node {
	e.t.Helper()
	cmd := exec.Command(path, args...)
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

// connect connects a client with the token clients' certificate to the
// front at addr, with opts (Host, Port, TLS, Runtime and OnConnect are set
// here), waits until it is connected, and shuts it down when the test
// ends.
func (e *env) connect(t *testing.T, addr string, opts actors.ClientOptions) *actors.Client {
	t.Helper()
	host, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	up := make(chan struct{}, 1)
	opts.Host, opts.Port, opts.TLS = host, port, e.certs.ClientOptions()
	opts.Runtime = actors.Runtime{System: actors.NewQuietSystem()}
	opts.OnConnect = func() {
		select {
		case up <- struct{}{}:
		default:
		}
	}
	cl, err := actors.NewClient(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = cl.Shutdown(ctx)
	})
	select {
	case <-up:
	case <-time.After(20 * time.Second):
		t.Fatalf("no connection to the front %s", addr)
	}
	return cl
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

// stopAll ends every node, then the etcd server if any (the nodes delete
// their keys as they stop): SIGTERM, then SIGKILL for those still running
// after 5 s; it returns once every process has exited.
func (e *env) stopAll() {
	e.mu.Lock()
	nodes := append([]*node(nil), e.nodes...)
	e.mu.Unlock()
	stop(e.t, nodes)
	if e.etcd != nil {
		stop(e.t, []*node{e.etcd.node})
	}
}

func stop(t *testing.T, nodes []*node) {
	for _, n := range nodes {
		_ = n.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, n := range nodes {
		select {
		case <-n.done:
		case <-time.After(5 * time.Second):
			t.Logf("node %s: no exit 5 s after SIGTERM: SIGKILL", n.name)
			_ = n.cmd.Process.Signal(syscall.SIGKILL)
			<-n.done
		}
		if t.Failed() {
			t.Logf("node %s stderr (end):\n%s", n.name, n.tail())
		}
	}
}

// TestFreePortsOutsideTheEphemeralRange: the ports handed to nodes are
// distinct, free, and below the range the system takes ports from for
// port 0 and outgoing connections.
func TestFreePortsOutsideTheEphemeralRange(t *testing.T) {
	low, high := fixedPortRange()
	ports := freePorts(t, 8)
	seen := map[int]bool{}
	for _, p := range ports {
		if p < low || p >= high {
			t.Errorf("port %d is outside [%d, %d)", p, low, high)
		}
		if seen[p] {
			t.Errorf("port %d given twice", p)
		}
		seen[p] = true
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Errorf("port %d is not free: %v", p, err)
			continue
		}
		_ = ln.Close()
	}
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		var start, end int
		if _, err := fmt.Sscan(string(b), &start, &end); err == nil && start-20000 >= 4096 && high != start {
			t.Errorf("range [%d, %d), want it to end where the ephemeral range %d-%d starts", low, high, start, end)
		}
	}
}
