package main

import (
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tokencat baseline serves the plain TLS echo loop in its own process: the
// first line as serve's, every reply verified by bench, exit 0 on SIGTERM.
func TestBaselineBinaryEchoesAndExitsOnSIGTERM(t *testing.T) {
	t.Parallel()
	dir := certDir(t)
	srv := startListening(t, "baseline", dir)
	r := mustRun(t, 0, 30*time.Second, "", sendArgs(srv.addr, dir, `back\slash`, "two\nlines", "")...)
	if want := "back\\slash\ntwo\nlines\n\n"; r.stdout != want {
		t.Errorf("send printed %q, want %q", r.stdout, want)
	}
	for _, mode := range []string{"roundtrip", "pipeline"} {
		args := append([]string{"bench", "--addr", srv.addr, "--mode", mode, "--count", "200", "--conns", "2", "--size", "40", "--json"}, tlsArgs(dir, "client")...)
		r := mustRun(t, 0, time.Minute, "", args...)
		var res benchJSON
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || res.Tokens != 200 {
			t.Errorf("%s: %q, %v", mode, r.stdout, err)
		}
	}
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := srv.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("baseline exited %d after SIGTERM, want 0\nstderr:\n%s", code, srv.stderr.String())
	}
}

func TestBaselineUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"baseline"},
		{"baseline", "--listen", "127.0.0.1:0"},
		{"baseline", "--listen", "nowhere", "--ca", "a", "--cert", "b", "--key", "c"},
		{"baseline", "extra"},
	} {
		if r := runInProcess(t, args...); r.code != exitUsage {
			t.Errorf("%s: exit %d, want %d (stderr %q)", strings.Join(args, " "), r.code, exitUsage, r.stderr)
		}
	}
}
