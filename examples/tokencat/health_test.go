package main

import (
	"bufio"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// serve --metrics answers Kubernetes probes on the same address: /healthz
// while the process runs; /readyz 200 once it listens for tokens, and 503
// from the moment it closes (after SIGTERM, while it waits for its clients
// to close).
func TestServeHealthAndReadinessProbes(t *testing.T) {
	t.Parallel()
	dir := certDir(t)
	srv := startServe(t, dir, "--metrics", "127.0.0.1:0")
	base := strings.TrimSuffix(srv.metricsURL(t), "/metrics")
	probe := func(path string, wantCode int, wantBody string) {
		t.Helper()
		code, body := httpGet(t, base+path)
		if code != wantCode || string(body) != wantBody {
			t.Errorf("GET %s: %d %q, want %d %q", path, code, body, wantCode, wantBody)
		}
	}
	// startServe has seen "listening on": the server is ready.
	probe("/healthz", http.StatusOK, "ok\n")
	probe("/readyz", http.StatusOK, "ok\n")

	// A client that ignores remoteClose keeps the server closing.
	conn := dialClient(t, srv.addr, dir)
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := conn.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	if line, err := r.ReadString('\n'); err != nil || line != "ping\n" {
		t.Fatalf("read %q, %v", line, err)
	}
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if line, err := r.ReadString('\n'); err != nil || line != "\\\n" {
		t.Fatalf("read %q, %v; want the remoteClose frame", line, err)
	}
	probe("/readyz", http.StatusServiceUnavailable, "not ready: closing\n")
	probe("/healthz", http.StatusOK, "ok\n")
	conn.Close()
	if code := srv.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("serve exited %d, want 0", code)
	}
}

// Before the server listens, /readyz says so.
func TestReadinessBeforeListening(t *testing.T) {
	t.Parallel()
	r := newReadiness()
	if err := r.check(); err == nil || err.Error() != "starting: not listening yet" {
		t.Errorf("a new readiness: %v", err)
	}
	r.listening()
	if err := r.check(); err != nil {
		t.Errorf("listening: %v", err)
	}
	r.closing()
	if err := r.check(); err == nil || err.Error() != "closing" {
		t.Errorf("closing: %v", err)
	}
}
