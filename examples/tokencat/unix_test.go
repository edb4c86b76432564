package main

import (
	"encoding/json"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// unixSocket returns a Unix socket path in a fresh temporary directory.
func unixSocket(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ts.sock")
	if len(p) > 100 {
		t.Fatalf("temporary directory too deep for a Unix socket path: %s", p)
	}
	return p
}

// serve --listen unix:PATH prints "listening on unix:PATH"; send and bench
// reach it with --addr unix:PATH; a second server on the same path is
// refused while the first answers; SIGTERM exits 0 and removes the socket
// file.
func TestServeSendBenchOverUnixSocket(t *testing.T) {
	t.Parallel()
	dir := certDir(t)
	path := unixSocket(t)
	srv := startServeArgs(t, "unix:"+path, tlsArgs(dir, "server")...)
	if srv.addr != "unix:"+path {
		t.Fatalf("addr %q", srv.addr)
	}
	st, err := os.Lstat(path)
	if err != nil || st.Mode().Type() != fs.ModeSocket {
		t.Fatalf("socket file: %v, %v", st, err)
	}

	r := mustRun(t, 0, 30*time.Second, "first\nsecond\n", sendArgs(srv.addr, dir)...)
	if r.stdout != "first\nsecond\n" {
		t.Errorf("send (stdin) printed %q", r.stdout)
	}
	r = mustRun(t, 0, 30*time.Second, "", sendArgs(srv.addr, dir, `back\slash`, "two\nlines", "")...)
	if want := "back\\slash\ntwo\nlines\n\n"; r.stdout != want {
		t.Errorf("send printed %q, want %q", r.stdout, want)
	}

	for _, mode := range []string{"roundtrip", "pipeline"} {
		args := append([]string{"bench", "--addr", srv.addr, "--mode", mode, "--count", "200", "--conns", "2", "--size", "40", "--json"},
			tlsArgs(dir, "client")...)
		r = mustRun(t, 0, time.Minute, "", args...)
		var res benchJSON
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
			t.Fatalf("bench %s: bad JSON %q: %v", mode, r.stdout, err)
		}
		if res.Tokens != 200 || res.StoppedBy != "count" || res.Target != srv.addr {
			t.Errorf("bench %s: %+v", mode, res)
		}
	}

	// A server already answers on the path: a second one fails and leaves
	// the socket file to the first.
	args := append([]string{"serve", "--listen", srv.addr}, tlsArgs(dir, "server")...)
	r = mustRun(t, 1, 30*time.Second, "", args...)
	if r.stdout != "" || !strings.Contains(r.stderr, "address in use") {
		t.Errorf("second serve: stdout %q, stderr %q", r.stdout, r.stderr)
	}
	r = mustRun(t, 0, 30*time.Second, "", sendArgs(srv.addr, dir, "still here")...)
	if r.stdout != "still here\n" {
		t.Errorf("send after the second serve printed %q", r.stdout)
	}

	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := srv.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("serve exited %d after SIGTERM, want 0", code)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket file after serve exited: %v", err)
	}

	// Nobody listens now: send fails with exit 1.
	r = mustRun(t, 1, 30*time.Second, "", sendArgs(srv.addr, dir, "--timeout", "5s", "hello")...)
	if !strings.Contains(r.stderr, "0 of 1 replies received") || !strings.Contains(r.stderr, path) {
		t.Errorf("send to a closed socket: stderr %q", r.stderr)
	}
}

// A socket file left by a server that is gone (nothing listens on it) is
// replaced by serve.
func TestServeReplacesStaleUnixSocket(t *testing.T) {
	t.Parallel()
	dir := certDir(t)
	path := unixSocket(t)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("no stale socket file: %v", err)
	}

	srv := startServeArgs(t, "unix:"+path, tlsArgs(dir, "server")...)
	r := mustRun(t, 0, 30*time.Second, "", sendArgs(srv.addr, dir, "over a stale path")...)
	if r.stdout != "over a stale path\n" {
		t.Errorf("send printed %q", r.stdout)
	}
}

// A path that exists and is not a socket is never removed: serve exits 1.
func TestServeRefusesPathThatIsNotASocket(t *testing.T) {
	t.Parallel()
	dir := certDir(t)
	path := unixSocket(t)
	if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"serve", "--listen", "unix:" + path}, tlsArgs(dir, "server")...)
	r := mustRun(t, 1, 30*time.Second, "", args...)
	if r.stdout != "" || !strings.Contains(r.stderr, "not a socket") {
		t.Errorf("stdout %q, stderr %q", r.stdout, r.stderr)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "precious" {
		t.Errorf("the file was touched: %q, %v", b, err)
	}
}
