package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tokenserver/tokenserver/tlsio"
)

// tokencatBin is the binary built once by TestMain (with -race when the tests
// run with -race).
var tokencatBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tokencat-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tokencatBin = filepath.Join(dir, "tokencat")
	args := []string{"build", "-o", tokencatBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building tokencat:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		os.RemoveAll(dir)
		os.Exit(code)
	}))
}

// result of one run of the binary.
type result struct {
	stdout, stderr string
	code           int
}

// tokencat runs the binary with args and stdin, bounded by timeout.
func tokencat(t *testing.T, timeout time.Duration, stdin string, args ...string) result {
	t.Helper()
	return tokencatEnv(t, timeout, nil, stdin, args...)
}

// tokencatEnv is tokencat with env ("NAME=value") added to the environment.
func tokencatEnv(t *testing.T, timeout time.Duration, env []string, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, tokencatBin, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("tokencat %s: did not finish within %v\nstderr:\n%s", strings.Join(args, " "), timeout, errb.String())
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("tokencat %s: %v", strings.Join(args, " "), err)
	}
	return result{out.String(), errb.String(), code}
}

// mustRun runs tokencat and fails the test unless it exits with want.
func mustRun(t *testing.T, want int, timeout time.Duration, stdin string, args ...string) result {
	t.Helper()
	r := tokencat(t, timeout, stdin, args...)
	if r.code != want {
		t.Fatalf("tokencat %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, want, r.stdout, r.stderr)
	}
	return r
}

// certDir writes a fresh set of certificates with "tokencat certs".
func certDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "certs")
	mustRun(t, 0, 30*time.Second, "", "certs", dir)
	return dir
}

// tlsArgs are --ca --cert --key for side "server" or "client" of dir.
func tlsArgs(dir, side string) []string {
	return []string{
		"--ca", filepath.Join(dir, "ca.crt"),
		"--cert", filepath.Join(dir, side+".crt"),
		"--key", filepath.Join(dir, side+".key"),
	}
}

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serveProc is a running "tokencat serve".
type serveProc struct {
	cmd    *exec.Cmd
	addr   string
	stderr *syncBuffer
	done   chan struct{} // closed when the process has exited
	err    error         // Wait's result, after done
}

var listeningLine = regexp.MustCompile(`^listening on (127\.0\.0\.1:[0-9]+)\n$`)

// startServe starts "tokencat serve --listen 127.0.0.1:0" with the server
// certificates of dir and extra flags, and waits for its first stdout line.
// The process is killed at the end of the test if still running.
func startServe(t *testing.T, dir string, extra ...string) *serveProc {
	t.Helper()
	return startListening(t, "serve", dir, extra...)
}

// startListening is startServe for the subcommand sub (serve or baseline),
// which prints the same first line.
func startListening(t *testing.T, sub, dir string, extra ...string) *serveProc {
	t.Helper()
	return startSubArgs(t, sub, "127.0.0.1:0", append(tlsArgs(dir, "server"), extra...)...)
}

// startServeArgs starts "tokencat serve --listen LISTEN args..." and waits
// for its first stdout line: "listening on 127.0.0.1:PORT", or for
// --listen unix:PATH exactly "listening on unix:PATH". p.addr is what
// follows "listening on ".
func startServeArgs(t *testing.T, listen string, args ...string) *serveProc {
	t.Helper()
	return startSubArgs(t, "serve", listen, args...)
}

// startSubArgs starts "tokencat SUB --listen LISTEN args..." (see
// startServeArgs).
func startSubArgs(t *testing.T, sub, listen string, args ...string) *serveProc {
	t.Helper()
	return startSubEnv(t, nil, sub, listen, args...)
}

// startSubEnv is startSubArgs with env ("NAME=value") added to the
// environment.
func startSubEnv(t *testing.T, env []string, sub, listen string, args ...string) *serveProc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	args = append([]string{sub, "--listen", listen}, args...)
	cmd := exec.CommandContext(ctx, tokencatBin, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	p := &serveProc{cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- line
		io.Copy(io.Discard, stdout) // nothing more is expected; drain anyway
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		cancel()
		if t.Failed() {
			t.Logf("serve stderr:\n%s", p.stderr.String())
		}
	})
	select {
	case line := <-lines:
		if strings.HasPrefix(listen, "unix:") {
			if want := "listening on " + listen + "\n"; line != want {
				t.Fatalf("first line of serve is %q, want %q\nstderr:\n%s", line, want, p.stderr.String())
			}
			p.addr = listen
			break
		}
		m := listeningLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("first line of serve is %q, want \"listening on 127.0.0.1:PORT\"\nstderr:\n%s", line, p.stderr.String())
		}
		p.addr = m[1]
	case <-time.After(30 * time.Second):
		t.Fatalf("serve printed no line within 30s\nstderr:\n%s", p.stderr.String())
	}
	return p
}

// wait waits for the process to exit and returns its exit code.
func (p *serveProc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("serve did not exit within %v\nstderr:\n%s", timeout, p.stderr.String())
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatalf("serve: %v", p.err)
	}
	return 0
}

// sendArgs builds "send --addr ADDR <client tls of dir> extra...".
func sendArgs(addr, dir string, extra ...string) []string {
	args := append([]string{"send", "--addr", addr}, tlsArgs(dir, "client")...)
	return append(args, extra...)
}

// dialClient connects to a serve at addr over mutual TLS with the client
// certificate of dir, without the actors runtime, so that the test decides
// what to write and when to read. The connection is closed at the end of the
// test.
func dialClient(t *testing.T, addr, dir string) *tls.Conn {
	t.Helper()
	return dialClientOf(t, addr, dir, dir)
}

// dialClientOf is dialClient with the client certificate of dir and the CA
// of caDir.
func dialClientOf(t *testing.T, addr, dir, caDir string) *tls.Conn {
	t.Helper()
	opts, err := tlsio.LoadFiles(filepath.Join(dir, "client.key"), filepath.Join(dir, "client.crt"), filepath.Join(caDir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := tlsio.ClientConfig(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := tlsio.Dial(ctx, addr, cfg, tlsio.DialConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
