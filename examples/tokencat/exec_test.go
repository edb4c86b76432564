package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// One client sends many large tokens, far faster than a slow --exec command
// takes them: the server stops reading that connection while the command is
// behind (TCP pushes back on the client), so its heap stays within a few
// tokens of where it started instead of holding everything sent; and every
// token is still run and answered.
func TestServeExecBoundsTheMemoryOfOneFastClient(t *testing.T) {
	t.Parallel()
	const (
		tokenSize = 4 << 20
		count     = 32 // 128 MiB in all
	)
	dir := certDir(t)
	srv := startServe(t, dir, "--exec", `sleep 0.1; printf %s "$(wc -c)"`, "--max-token-size", strconv.Itoa(tokenSize),
		"--metrics", "127.0.0.1:0")
	url := srv.metricsURL(t)
	heap := func() float64 {
		t.Helper()
		v, ok := scrape(t, url).value(t, "go_memstats_heap_inuse_bytes")
		if !ok {
			t.Fatal("no go_memstats_heap_inuse_bytes in the scrape")
		}
		return v
	}
	base := heap()

	conn := dialClient(t, srv.addr, dir)
	frame := append(bytes.Repeat([]byte{'x'}, tokenSize), '\n')
	written := make(chan error, 1)
	go func() {
		for range count {
			_ = conn.SetWriteDeadline(time.Now().Add(time.Minute))
			if _, err := conn.Write(frame); err != nil {
				written <- err
				return
			}
		}
		written <- nil
	}()
	answered := make(chan error, 1)
	go func() {
		r := bufio.NewReader(conn)
		for i := range count {
			_ = conn.SetReadDeadline(time.Now().Add(time.Minute))
			line, err := r.ReadString('\n')
			if err != nil {
				answered <- fmt.Errorf("reply %d: %w", i+1, err)
				return
			}
			if strings.TrimSpace(line) != strconv.Itoa(tokenSize) {
				answered <- fmt.Errorf("reply %d is %q, want the token's size", i+1, line)
				return
			}
		}
		answered <- nil
	}()

	peak := base
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(2 * time.Minute)
	defer deadline.Stop()
wait:
	for {
		select {
		case err := <-answered:
			if err != nil {
				t.Fatal(err)
			}
			break wait
		case <-tick.C:
			peak = max(peak, heap())
		case <-deadline.C:
			t.Fatal("the replies did not all come back within 2 minutes")
		}
	}
	if err := <-written; err != nil {
		t.Fatalf("writing the tokens: %v", err)
	}
	// Live at once: the token whose command runs, or the one being read
	// (in a buffer that grows by doubling); the heap also holds garbage up
	// to the live bytes again before the GC runs (GOGC=100). Measured: about
	// 5 tokens. Everything sent is 32.
	const allowed = 10 * tokenSize
	t.Logf("heap in use: %.1f MiB before, peak %.1f MiB while %d MiB went through one connection",
		base/(1<<20), peak/(1<<20), count*tokenSize>>20)
	if peak-base > allowed {
		t.Errorf("the server's heap grew by %.0f MiB for one connection, want at most %d MiB",
			(peak-base)/(1<<20), allowed>>20)
	}
}

// More tokens than any fixed backlog (1,024) wait on one connection while
// the first command is slow: every one of them is run and answered, in
// order, none dropped.
func TestServeExecRunsEveryQueuedTokenInOrder(t *testing.T) {
	t.Parallel()
	const count = 1100
	dir := certDir(t)
	// The first token's command sleeps, so that the others all wait.
	srv := startServe(t, dir, "--exec", `IFS= read -r t; [ "$t" = 0 ] && sleep 1; printf '<%s>' "$t"`)
	var in, want strings.Builder
	for i := range count {
		fmt.Fprintf(&in, "%d\n", i)
		fmt.Fprintf(&want, "<%d>\n", i)
	}
	r := mustRun(t, 0, 90*time.Second, in.String(), sendArgs(srv.addr, dir, "--timeout", "60s")...)
	if r.stdout != want.String() {
		got := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
		t.Fatalf("%d replies, want %d in order; the last: %q", len(got), count, got[len(got)-1])
	}
	if log := srv.stderr.String(); strings.Contains(log, "dropped") {
		t.Errorf("serve dropped tokens:\n%s", log)
	}
}

// SIGTERM while a command runs and tokens wait behind it: the waiting
// tokens are not run (and the log says how many), the running command
// finishes and its reply goes out, and the connection closes cleanly once
// the client closes, without waiting for the close deadline.
func TestServeExecSIGTERMRunsNoMoreCommands(t *testing.T) {
	t.Parallel()
	dir := certDir(t)
	marker := filepath.Join(t.TempDir(), "started")
	srv := startServe(t, dir, "--exec", `touch `+marker+`; sleep 1; cat`)
	conn := dialClient(t, srv.addr, dir)
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := conn.Write([]byte("first\nsecond\nthird\n")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool { _, err := os.Stat(marker); return err == nil },
		"the first command did not start")
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	var got []string
	for len(got) < 2 {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		got = append(got, line)
	}
	if want := []string{"\\\n", "first\n"}; !slices.Equal(got, want) {
		t.Fatalf("read %q, want remoteClose then the first reply %q", got, want)
	}
	conn.Close()
	if code := srv.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("serve exited %d, want 0", code)
	}
	log := srv.stderr.String()
	if !strings.Contains(log, `msg="connection closed: tokens not run" conn=1 tokens=2`) {
		t.Errorf("serve did not log the 2 tokens it did not run:\n%s", log)
	}
	if strings.Contains(log, "forced_close") || strings.Contains(log, "not delivered") {
		t.Errorf("serve forced the close or dropped the reply:\n%s", log)
	}
}

// The passphrase of serve's key, given in TOKENCAT_PASSPHRASE, does not
// reach the --exec commands, nor does any other TOKENCAT_ variable; the
// rest of the environment does.
func TestServeExecCommandsDoNotSeeThePassphrase(t *testing.T) {
	t.Parallel()
	dir := certDir(t)
	key := writeTestFile(t, t.TempDir(), "server-enc.key", encryptedKey(t, readPair(t, dir, "server"), testPassphrase))
	env := []string{"TOKENCAT_PASSPHRASE=" + testPassphrase, "TOKENCAT_SOMETHING=tokencat-only", "KEPT_FOR_COMMANDS=yes"}
	srv := startSubEnv(t, env, "serve", "127.0.0.1:0", "--ca", filepath.Join(dir, "ca.crt"),
		"--cert", filepath.Join(dir, "server.crt"), "--key", key, "--exec", "env")
	r := mustRun(t, 0, 30*time.Second, "", sendArgs(srv.addr, dir, "--timeout", "10s", "any")...)
	if !strings.Contains(r.stdout, "KEPT_FOR_COMMANDS=yes\n") {
		t.Fatalf("the command's environment lacks KEPT_FOR_COMMANDS:\n%s", r.stdout)
	}
	for _, secret := range []string{testPassphrase, "TOKENCAT_", "tokencat-only"} {
		if strings.Contains(r.stdout, secret) {
			t.Errorf("the command's environment contains %q:\n%s", secret, r.stdout)
		}
	}
}

// Loading the TLS flags unsets $TOKENCAT_PASSPHRASE, so that no process
// tokencat starts inherits it; and serve's help says what the commands get.
func TestPassphraseVariableUnsetOnceRead(t *testing.T) {
	dir := certDir(t)
	t.Setenv(passphraseEnv, testPassphrase)
	flags := tlsFlags{ca: filepath.Join(dir, "ca.crt"), cert: filepath.Join(dir, "server.crt"), key: filepath.Join(dir, "server.key")}
	o, err := flags.load()
	if err != nil {
		t.Fatal(err)
	}
	if o.Passphrase != testPassphrase {
		t.Errorf("passphrase %q, want the variable's", o.Passphrase)
	}
	if v, set := os.LookupEnv(passphraseEnv); set {
		t.Errorf("%s is still set after load: %q", passphraseEnv, v)
	}
	help := runInProcess(t, "serve", "--help").stdout
	if !strings.Contains(help, "without the variables\nwhose names start with TOKENCAT_") {
		t.Errorf("serve help does not say which variables the commands do not get:\n%s", help)
	}
}
