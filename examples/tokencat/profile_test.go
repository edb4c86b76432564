package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// serve --cpuprofile writes a profile (gzip-compressed protobuf) when it exits
// after SIGTERM.
func TestServeCPUProfileWrittenOnSIGTERM(t *testing.T) {
	t.Parallel()
	dir := certDir(t)
	prof := filepath.Join(t.TempDir(), "cpu.out")
	srv := startServe(t, dir, "--echo", "--cpuprofile", prof)
	r := mustRun(t, 0, 30*time.Second, "", sendArgs(srv.addr, dir, "profiled")...)
	if r.stdout != "profiled\n" {
		t.Errorf("send printed %q", r.stdout)
	}
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := srv.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("serve exited %d after SIGTERM, want 0\nstderr:\n%s", code, srv.stderr.String())
	}
	b, err := os.ReadFile(prof)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
		t.Errorf("%s is not a pprof profile (%d bytes)", prof, len(b))
	}
}

func TestServeCPUProfileUnwritableExits1(t *testing.T) {
	t.Parallel()
	dir := certDir(t)
	args := append([]string{"serve", "--listen", "127.0.0.1:0", "--cpuprofile", filepath.Join(dir, "missing", "cpu.out")}, tlsArgs(dir, "server")...)
	r := mustRun(t, 1, 30*time.Second, "", args...)
	if r.stdout != "" || !strings.Contains(r.stderr, "--cpuprofile") {
		t.Errorf("stdout %q, stderr %q", r.stdout, r.stderr)
	}
}

func TestServeHelpDocumentsCPUProfile(t *testing.T) {
	t.Parallel()
	r := runInProcess(t, "serve", "--help")
	for _, want := range []string{"--cpuprofile FILE", "go tool pprof -top tokencat FILE"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("serve help does not contain %q:\n%s", want, r.stdout)
		}
	}
}
