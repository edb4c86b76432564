package flowcontrol

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
)

// The child process: this test binary run again with childEnv set is an echo
// server (OnToken sends every token back) with the default limits, unless
// childHWMEnv sets the high-water mark. It prints "listening <addr>", then
// samples its heap and its connections' flow control every 2 ms. A line
// "report" on its stdin makes it print a childReport as one JSON line, shut
// down and exit. Only the server runs in it, so its heap is the server's.
const (
	childEnv      = "TOKENSERVER_FLOWCONTROL_CHILD" // the directory of the certificates
	childHWMEnv   = "TOKENSERVER_FLOWCONTROL_HWM"   // Limits.HighWaterMark, in bytes
	childLifetime = 2 * time.Minute
)

// childReport is what the child server measured.
type childReport struct {
	Heap heapFigures
	// MaxQueued is the largest Connection.Queued() seen.
	MaxQueued int
	// Paused: a connection was seen with ReadPaused() true.
	Paused bool
	// Tokens is how many tokens the server received.
	Tokens int
	// Drains is how many drain events came.
	Drains int
	// Errors are the connection error events, as text.
	Errors []string
	// Dropped is how many tokens OnDropped reported.
	Dropped int
	// Limits are the limits the server ran with (after defaults).
	HighWaterMark, ReadWindow, ReadBufferSize int
}

// runChildServer is the child's main; it returns the exit code.
func runChildServer() int {
	fail := func(err error) int {
		fmt.Println("error", err)
		return 1
	}
	dir := os.Getenv(childEnv)
	opts, err := tlsio.LoadFiles(filepath.Join(dir, "server.key"), filepath.Join(dir, "server.crt"), filepath.Join(dir, "ca.crt"))
	if err != nil {
		return fail(err)
	}
	opts.RequestCert = true
	limits := actors.Limits{}
	if v := os.Getenv(childHWMEnv); v != "" {
		if limits.HighWaterMark, err = strconv.Atoi(v); err != nil {
			return fail(err)
		}
	}
	var (
		mu     sync.Mutex
		report childReport
		conns  []*actors.Connection
		tokens atomic.Int64
	)
	up := make(chan struct{}, 1)
	sys := actors.NewQuietSystem()
	defer sys.Shutdown()
	srv, err := actors.NewServer(actors.ServerOptions{
		Host: "127.0.0.1", TLS: opts, Limits: limits, Runtime: actors.Runtime{System: sys},
		OnConnect: func() { put(up, struct{}{}) },
		OnConnection: func(c *actors.Connection) {
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		},
		OnToken: func(tok []byte, c *actors.Connection) {
			tokens.Add(1)
			c.Send(tok)
		},
		OnDrain: func(*actors.Connection) {
			mu.Lock()
			report.Drains++
			mu.Unlock()
		},
		OnConnectionError: func(_ *actors.Connection, err error) {
			mu.Lock()
			report.Errors = append(report.Errors, err.Error())
			mu.Unlock()
		},
		OnDropped: func(_ *actors.Connection, toks [][]byte, _ error) {
			mu.Lock()
			report.Dropped += len(toks)
			mu.Unlock()
		},
	})
	if err != nil {
		return fail(err)
	}
	select {
	case <-up:
	case <-time.After(deadline):
		return fail(fmt.Errorf("not listening after %v", deadline))
	}
	heap := startHeapSampler(2 * time.Millisecond)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			mu.Lock()
			for _, c := range conns {
				report.MaxQueued = max(report.MaxQueued, c.Queued())
				report.Paused = report.Paused || c.ReadPaused()
			}
			mu.Unlock()
			select {
			case <-tick.C:
			case <-stop:
				return
			}
		}
	}()
	fmt.Println("listening", srv.Addr())

	in := bufio.NewScanner(os.Stdin)
	for in.Scan() && in.Text() != "report" {
	}
	close(stop)
	<-done
	mu.Lock()
	report.Heap = heap.Stop()
	report.Tokens = int(tokens.Load())
	report.HighWaterMark = limits.HighWaterMark
	if report.HighWaterMark == 0 {
		report.HighWaterMark = actors.DefaultHighWaterMark
	}
	report.ReadWindow, report.ReadBufferSize = tlsio.DefaultReadWindow, tlsio.DefaultReadBufferSize
	b, err := json.Marshal(report)
	mu.Unlock()
	if err != nil {
		return fail(err)
	}
	fmt.Println(string(b))
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		return fail(err)
	}
	return 0
}

// childServer is the child process as the parent test sees it.
type childServer struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin interface{ Write([]byte) (int, error) }
	lines chan string
	addr  string
}

// startChildServer runs the child echo server with certs (and the
// high-water mark hwm, 0 for the default), and waits until it listens. It is
// killed when the test ends if it has not exited.
func startChildServer(t *testing.T, certs *tlsio.DevCerts, hwm int) *childServer {
	t.Helper()
	dir := t.TempDir()
	if err := certs.WriteFiles(dir, false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), childLifetime)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	if hwm != 0 {
		cmd.Env = append(cmd.Env, childHWMEnv+"="+strconv.Itoa(hwm))
	}
	cmd.Stderr = os.Stderr
	cmd.WaitDelay = 5 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	c := &childServer{t: t, cmd: cmd, stdin: stdin, lines: make(chan string, 16)}
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<16), 1<<20)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
		_ = cmd.Wait()
		cancel()
	}()
	t.Cleanup(func() {
		_ = stdin.Close()
		select {
		case <-exited:
		case <-time.After(deadline):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("child server did not exit")
		}
	})
	line := c.line("the listening line")
	addr, ok := strings.CutPrefix(line, "listening ")
	if !ok {
		t.Fatalf("child server: want `listening <addr>`, got %q", line)
	}
	c.addr = addr
	return c
}

// line returns the child's next stdout line.
func (c *childServer) line(what string) string {
	c.t.Helper()
	select {
	case l, ok := <-c.lines:
		if !ok {
			c.t.Fatalf("child server exited while waiting for %s", what)
		}
		return l
	case <-time.After(deadline):
		c.t.Fatalf("timed out waiting for the child server's %s", what)
	}
	return ""
}

// report asks the child for its report; the child then exits.
func (c *childServer) report() childReport {
	c.t.Helper()
	if _, err := c.stdin.Write([]byte("report\n")); err != nil {
		c.t.Fatal(err)
	}
	line := c.line("report")
	var r childReport
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		c.t.Fatalf("child server report %q: %v", line, err)
	}
	return r
}
