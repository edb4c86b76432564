package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
)

// Deadlines of the interop tests.
const (
	// nodeLifetime bounds the life of every node process a test starts.
	nodeLifetime = 90 * time.Second
	// eventTimeout bounds the wait for any single event.
	eventTimeout = 15 * time.Second
	// quietPeriod is how long a test watches for events that must not come.
	quietPeriod = 300 * time.Millisecond
)

// requireNode returns the path of the node binary, and fails the test (never
// skips it) when node or the npm dependencies are missing.
func requireNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("interop tests need Node.js: `node` is not on PATH (%v); install Node.js >= 7 and run `npm ci` in test/interop (or `make test`)", err)
	}
	if _, err := os.Stat(filepath.Join("node_modules", "token-server", "package.json")); err != nil {
		t.Fatalf("interop tests need the npm package token-server 1.0.10 in test/interop/node_modules (%v): run `npm ci` in test/interop (or `make test`)", err)
	}
	return node
}

// certFiles are development certificates written to a temporary directory.
type certFiles struct {
	*tlsio.DevCerts
	dir string
}

func (c certFiles) path(name string) string { return filepath.Join(c.dir, name) }

// newCerts generates development certificates (a CA, a server and a client
// certificate) and writes them as PEM files for node.
func newCerts(t *testing.T) certFiles {
	t.Helper()
	certs, err := tlsio.GenerateDevCerts()
	if err != nil {
		t.Fatalf("GenerateDevCerts: %v", err)
	}
	dir := t.TempDir()
	if err := certs.WriteFiles(dir, false); err != nil {
		t.Fatalf("WriteFiles: %v", err)
	}
	return certFiles{DevCerts: certs, dir: dir}
}

// lockedBuffer collects a process's stderr.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// nodeProc is a running node script as seen from one test: failures go to t.
type nodeProc struct {
	t *testing.T
	*proc
}

// proc is a running node script: its stdin, its stdout as lines, its stderr,
// and its exit.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string // stdout lines, closed at EOF
	stderr *lockedBuffer
	done   chan struct{} // closed once the process has been waited for
	err    error         // the result of Wait, set before done closes
}

// startNode runs `node script args...` in the package directory, with a
// deadline. The process is killed and waited for in t.Cleanup.
func startNode(t *testing.T, script string, args ...string) *nodeProc {
	t.Helper()
	node := requireNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), nodeLifetime)
	cmd := exec.CommandContext(ctx, node, append([]string{script}, args...)...)
	cmd.WaitDelay = 5 * time.Second
	p := &nodeProc{t: t, proc: &proc{
		name:   script,
		cmd:    cmd,
		lines:  make(chan string, 1<<16),
		stderr: &lockedBuffer{},
		done:   make(chan struct{}),
	}}
	cmd.Stderr = p.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatalf("%s: stdout pipe: %v", script, err)
	}
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		cancel()
		t.Fatalf("%s: stdin pipe: %v", script, err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start node %s: %v", script, err)
	}
	go func() {
		defer close(p.done)
		r := bufio.NewReaderSize(stdout, 1<<20)
		for {
			line, err := r.ReadString('\n')
			if line = strings.TrimRight(line, "\r\n"); line != "" {
				p.lines <- line
			}
			if err != nil {
				break
			}
		}
		close(p.lines)
		p.err = cmd.Wait()
		cancel()
	}()
	t.Cleanup(func() {
		_ = p.stdin.Close()
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				t.Errorf("%s: node process %d did not exit after kill", script, cmd.Process.Pid)
			}
		}
		if t.Failed() {
			t.Logf("%s stderr:\n%s", script, p.stderr.String())
		}
	})
	return p
}

// nextLine returns the next stdout line, failing the test after timeout or if
// the process ends first.
func (p *nodeProc) nextLine(timeout time.Duration, what string) string {
	p.t.Helper()
	select {
	case line, ok := <-p.lines:
		if !ok {
			p.t.Fatalf("%s: node exited while waiting for %s: %s\nstderr:\n%s", p.name, what, p.exitStatus(), p.stderr.String())
		}
		return line
	case <-time.After(timeout):
		p.t.Fatalf("%s: timed out after %v waiting for %s\nstderr:\n%s", p.name, timeout, what, p.stderr.String())
	}
	return ""
}

// exitStatus describes how the process ended; call it after lines closed.
func (p *nodeProc) exitStatus() string {
	select {
	case <-p.done:
		if p.err == nil {
			return "exit status 0"
		}
		return p.err.Error()
	case <-time.After(5 * time.Second):
		return "still running"
	}
}

// waitExit waits for the process to end and returns Wait's result.
func (p *nodeProc) waitExit(timeout time.Duration) error {
	p.t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		p.t.Fatalf("%s: process did not exit within %v\nstderr:\n%s", p.name, timeout, p.stderr.String())
	}
	return nil
}

// write sends text to the process's stdin.
func (p *nodeProc) write(text string) {
	p.t.Helper()
	if _, err := io.WriteString(p.stdin, text); err != nil {
		p.t.Fatalf("%s: write to stdin: %v\nstderr:\n%s", p.name, err, p.stderr.String())
	}
}

// ---- echo-server.js ----

// nodeServer is echo-server.js: the original TokenServer echoing every token.
type nodeServer struct {
	*nodeProc
	port int    // the TCP port, or 0
	path string // the Unix socket, or ""
}

// startNodeServer starts echo-server.js with the server certificate of certs
// and waits for its "listening <port>" line.
func startNodeServer(t *testing.T, certs certFiles) *nodeServer {
	t.Helper()
	return startNodeServerArgs(t,
		"--key", certs.path("server.key"), "--cert", certs.path("server.crt"), "--ca", certs.path("ca.crt"))
}

// startNodeServerArgs starts echo-server.js with the given arguments and
// waits for its "listening <port>" (or, with --path, "listening <path>")
// line.
func startNodeServerArgs(t *testing.T, args ...string) *nodeServer {
	t.Helper()
	p := startNode(t, "echo-server.js", args...)
	line := p.nextLine(eventTimeout, "the listening line")
	where, ok := strings.CutPrefix(line, "listening ")
	if !ok {
		t.Fatalf("echo-server.js: want `listening <port or path>`, got %q", line)
	}
	if slices.Contains(args, "--path") {
		return &nodeServer{nodeProc: p, path: where}
	}
	port, err := strconv.Atoi(where)
	if err != nil || port <= 0 {
		t.Fatalf("echo-server.js: want `listening <port>`, got %q", line)
	}
	return &nodeServer{nodeProc: p, port: port}
}

// close asks the server to close (a "close" line on stdin).
func (s *nodeServer) close() { s.write("close\n") }

// ---- client.js ----

// clientEvent is one JSON line of client.js.
type clientEvent struct {
	Event    string `json:"event"`
	Hex      string `json:"hex,omitempty"`
	Message  string `json:"message,omitempty"`
	Code     string `json:"code,omitempty"`
	HadError bool   `json:"hadError,omitempty"`
}

func (e clientEvent) String() string {
	switch e.Event {
	case "token":
		if len(e.Hex) > 64 {
			return fmt.Sprintf("token(%d bytes)", len(e.Hex)/2)
		}
		return "token(" + e.Hex + ")"
	case "error":
		return fmt.Sprintf("error(%s: %s)", e.Code, e.Message)
	case "close":
		return fmt.Sprintf("close(hadError=%v)", e.HadError)
	}
	return e.Event
}

// nodeClient is client.js: the original TokenClient driven by JSON lines.
type nodeClient struct {
	*nodeProc
}

// on returns the same client reporting failures to t (a subtest): a test may
// only fail from its own goroutine.
func (c *nodeClient) on(t *testing.T) *nodeClient {
	return &nodeClient{&nodeProc{t: t, proc: c.proc}}
}

// clientTLS says which PEM files client.js gets.
type clientTLS struct {
	key, cert, ca string // paths; empty: not given
}

// withCert is the client certificate of certs and their CA.
func withCert(certs certFiles) clientTLS {
	return clientTLS{key: certs.path("client.key"), cert: certs.path("client.crt"), ca: certs.path("ca.crt")}
}

// startNodeClient starts client.js connecting to 127.0.0.1:port.
func startNodeClient(t *testing.T, port int, tlsFiles clientTLS) *nodeClient {
	t.Helper()
	args := []string{"--host", "127.0.0.1", "--port", strconv.Itoa(port)}
	for _, kv := range [][2]string{{"--key", tlsFiles.key}, {"--cert", tlsFiles.cert}, {"--ca", tlsFiles.ca}} {
		if kv[1] != "" {
			args = append(args, kv[0], kv[1])
		}
	}
	return startNodeClientArgs(t, args...)
}

// startNodeClientArgs starts client.js with the given arguments (see
// client.js: --host and --port or --path, --key, --cert, --ca, --pfx,
// --passphrase, --servername).
func startNodeClientArgs(t *testing.T, args ...string) *nodeClient {
	t.Helper()
	return &nodeClient{startNode(t, "client.js", args...)}
}

// next returns the next event of the client.
func (c *nodeClient) next(what string) clientEvent {
	c.t.Helper()
	line := c.nextLine(eventTimeout, what)
	var ev clientEvent
	if err := json.Unmarshal([]byte(line), &ev); err != nil {
		c.t.Fatalf("client.js: bad event line %q: %v", line, err)
	}
	return ev
}

// expect returns the next event, failing unless it is of the given kind.
func (c *nodeClient) expect(kind string) clientEvent {
	c.t.Helper()
	ev := c.next("event " + kind)
	if ev.Event != kind {
		c.t.Fatalf("client.js: want event %q, got %v\nstderr:\n%s", kind, ev, c.stderr.String())
	}
	return ev
}

// until reads events up to and including the first of the given kind and
// returns all of them.
func (c *nodeClient) until(kind string) []clientEvent {
	c.t.Helper()
	var evs []clientEvent
	for {
		ev := c.next("event " + kind)
		evs = append(evs, ev)
		if ev.Event == kind {
			return evs
		}
	}
}

// token decodes the next event, which must be a token.
func (c *nodeClient) token() []byte {
	c.t.Helper()
	ev := c.expect("token")
	b, err := hex.DecodeString(ev.Hex)
	if err != nil {
		c.t.Fatalf("client.js: bad hex in token event: %v", err)
	}
	return b
}

func (c *nodeClient) command(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	return string(b) + "\n"
}

// send asks the client to send token.
func (c *nodeClient) send(token []byte) {
	c.t.Helper()
	c.write(c.command(map[string]string{"send": hex.EncodeToString(token)}))
}

// sendMany asks the client to send every token, in one write to its stdin, so
// that it sends them back to back without waiting for any echo.
func (c *nodeClient) sendMany(tokens [][]byte) {
	c.t.Helper()
	var b strings.Builder
	for _, tok := range tokens {
		b.WriteString(c.command(map[string]string{"send": hex.EncodeToString(tok)}))
	}
	c.write(b.String())
}

// raw asks the client to write bytes to its socket as they are, unframed.
func (c *nodeClient) raw(b []byte) {
	c.t.Helper()
	c.write(c.command(map[string]string{"raw": hex.EncodeToString(b)}))
}

// close asks the client to close.
func (c *nodeClient) close() {
	c.t.Helper()
	c.write(c.command(map[string]bool{"close": true}))
}

// errExitedWith reports whether err is an exit with a non-zero status.
func errExitedWith(err error) (int, bool) {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), true
	}
	return 0, false
}

// ---- the Go side ----

// newSystem returns an actor system shut down after everything the test
// registers later (t.Cleanup runs last-in first-out).
func newSystem(t *testing.T) *actor.ActorSystem {
	sys := actors.NewQuietSystem()
	t.Cleanup(sys.Shutdown)
	return sys
}

// shutdown ends a server or client within a deadline.
func shutdown(t *testing.T, what string, f func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := f(ctx); err != nil {
		t.Errorf("%s shutdown: %v", what, err)
	}
}

// connErr is one OnConnectionError.
type connErr struct {
	c   *actors.Connection
	err error
}

// goServer is an actors.Server echoing every token, with its events on
// channels.
type goServer struct {
	srv        *actors.Server
	port       int
	conns      chan *actors.Connection // OnConnection
	connErrs   chan connErr            // OnConnectionError
	connCloses chan bool               // OnConnectionClose
	errs       chan error              // OnError
	closes     chan bool               // OnClose
}

// startGoServer starts an echo server on 127.0.0.1 with the given TLS
// options and waits until it listens.
func startGoServer(t *testing.T, sys *actor.ActorSystem, tlsOpts tlsio.Options) *goServer {
	t.Helper()
	return startGoServerOn(t, sys, "", tlsOpts)
}

// startGoServerOn is startGoServer listening on the Unix socket path
// (ServerOptions.Path), or on 127.0.0.1 when path is "".
func startGoServerOn(t *testing.T, sys *actor.ActorSystem, path string, tlsOpts tlsio.Options) *goServer {
	t.Helper()
	host := "127.0.0.1"
	if path != "" {
		host = ""
	}
	g := &goServer{
		conns:      make(chan *actors.Connection, 64),
		connErrs:   make(chan connErr, 64),
		connCloses: make(chan bool, 64),
		errs:       make(chan error, 8),
		closes:     make(chan bool, 8),
	}
	listening := make(chan struct{}, 1)
	srv, err := actors.NewServer(actors.ServerOptions{
		Host:              host,
		Port:              0,
		Path:              path,
		TLS:               tlsOpts,
		Runtime:           actors.Runtime{System: sys},
		OnConnect:         func() { listening <- struct{}{} },
		OnConnection:      func(c *actors.Connection) { g.conns <- c },
		OnToken:           func(tok []byte, c *actors.Connection) { c.Send(tok) },
		OnConnectionError: func(c *actors.Connection, err error) { g.connErrs <- connErr{c, err} },
		OnConnectionClose: func(_ *actors.Connection, hadError bool) { g.connCloses <- hadError },
		OnError:           func(err error) { g.errs <- err },
		OnClose:           func(hadError bool) { g.closes <- hadError },
	})
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	g.srv = srv
	t.Cleanup(func() { shutdown(t, "server", srv.Shutdown) })
	select {
	case <-listening:
	case err := <-g.errs:
		t.Fatalf("Go server failed to listen: %v", err)
	case <-time.After(eventTimeout):
		t.Fatal("timed out waiting for the Go server to listen")
	}
	if path == "" {
		g.port = srv.Addr().(*net.TCPAddr).Port
	}
	return g
}

// goClient is an actors.Client with its events on channels.
type goClient struct {
	cli         *actors.Client
	connected   chan struct{} // OnConnect
	tokens      chan []byte   // OnToken
	remoteClose chan struct{} // OnRemoteClose
	errs        chan error    // OnError
	closes      chan bool     // OnClose
}

// startGoClient connects a client to 127.0.0.1:port; it does not wait.
func startGoClient(t *testing.T, sys *actor.ActorSystem, port int, tlsOpts tlsio.Options) *goClient {
	t.Helper()
	return startGoClientOn(t, sys, "127.0.0.1", port, "", tlsOpts)
}

// startGoClientOn connects a client to host:port, or to the Unix socket path
// (ClientOptions.Path) when path is not ""; it does not wait.
func startGoClientOn(t *testing.T, sys *actor.ActorSystem, host string, port int, path string, tlsOpts tlsio.Options) *goClient {
	t.Helper()
	g := &goClient{
		connected:   make(chan struct{}, 8),
		tokens:      make(chan []byte, 1<<15),
		remoteClose: make(chan struct{}, 8),
		errs:        make(chan error, 8),
		closes:      make(chan bool, 8),
	}
	cli, err := actors.NewClient(actors.ClientOptions{
		Host:          host,
		Port:          port,
		Path:          path,
		TLS:           tlsOpts,
		Runtime:       actors.Runtime{System: sys},
		OnConnect:     func() { g.connected <- struct{}{} },
		OnToken:       func(tok []byte, _ *actors.Connection) { g.tokens <- tok },
		OnRemoteClose: func(*actors.Connection) { g.remoteClose <- struct{}{} },
		OnError:       func(err error) { g.errs <- err },
		OnClose:       func(hadError bool) { g.closes <- hadError },
	})
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	g.cli = cli
	t.Cleanup(func() { shutdown(t, "client", cli.Shutdown) })
	return g
}

// recv waits for one value on ch.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(eventTimeout):
		t.Fatalf("timed out after %v waiting for %s", eventTimeout, what)
	}
	var zero T
	return zero
}

// none fails if ch yields a value within the quiet period.
func none[T any](t *testing.T, ch <-chan T, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("unexpected %s: %v", what, v)
	case <-time.After(quietPeriod):
	}
}
