package main

import (
	"context"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
)

func TestServeSendRoundTripOverMutualTLS(t *testing.T) {
	t.Parallel()
	dir := certDir(t)
	srv := startServe(t, dir)

	// Tokens as arguments: a backslash, an escaped-looking sequence, a
	// newline inside, an empty one; "--" lets a token start with a dash.
	r := mustRun(t, 0, 30*time.Second, "", sendArgs(srv.addr, dir, `back\slash`, `\n is not a newline`, "two\nlines", "", "--", "-dash")...)
	want := "back\\slash\n\\n is not a newline\ntwo\nlines\n\n-dash\n"
	if r.stdout != want {
		t.Errorf("send printed %q, want %q", r.stdout, want)
	}

	// Tokens from stdin, one per line.
	r = mustRun(t, 0, 30*time.Second, "first\n\\second\\\n\nlast without newline", sendArgs(srv.addr, dir)...)
	if want := "first\n\\second\\\n\nlast without newline\n"; r.stdout != want {
		t.Errorf("send (stdin) printed %q, want %q", r.stdout, want)
	}

	// Many lines from stdin: more than one window's worth of replies.
	var in, out strings.Builder
	for i := range 5000 {
		line := strings.Repeat("x\\", 200) + strconv.Itoa(i)
		in.WriteString(line + "\n")
		out.WriteString(line + "\n")
	}
	r = mustRun(t, 0, 60*time.Second, in.String(), sendArgs(srv.addr, dir, "--timeout", "30s")...)
	if r.stdout != out.String() {
		t.Errorf("send of 5000 lines: output differs (%d bytes, want %d)", len(r.stdout), out.Len())
	}

	if s := srv.stderr.String(); !strings.Contains(s, `msg="connection opened"`) || !strings.Contains(s, `client="tokenserver client"`) {
		t.Errorf("serve did not log the connection:\n%s", s)
	}
}

func TestServeRefusesClientCertificateFromAnotherCA(t *testing.T) {
	t.Parallel()
	dir := certDir(t)
	other := certDir(t)
	srv := startServe(t, dir)

	// The client trusts the server (right CA) but shows a certificate of
	// another CA.
	args := []string{"send", "--addr", srv.addr,
		"--ca", filepath.Join(dir, "ca.crt"),
		"--cert", filepath.Join(other, "client.crt"),
		"--key", filepath.Join(other, "client.key"),
		"--timeout", "5s", "hello"}
	r := mustRun(t, 1, 30*time.Second, "", args...)
	if r.stdout != "" {
		t.Errorf("a refused client got replies: %q", r.stdout)
	}
	if !strings.Contains(r.stderr, "0 of 1 replies") {
		t.Errorf("stderr: %q", r.stderr)
	}
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(srv.stderr.String(), "code=handshake") },
		"serve did not log the handshake failure")

	// The server is still alive for a proper client.
	r = mustRun(t, 0, 30*time.Second, "", sendArgs(srv.addr, dir, "still here")...)
	if r.stdout != "still here\n" {
		t.Errorf("send printed %q", r.stdout)
	}
}

func TestServeExecFailureSendsNothingAndKeepsServing(t *testing.T) {
	t.Parallel()
	dir := certDir(t)
	// Fails (exit 3) only for the token "fail"; otherwise replies with the
	// token in brackets.
	script := `t=$(cat); if [ "$t" = fail ]; then echo "refusing $t" >&2; exit 3; fi; printf '[%s]' "$t"`
	srv := startServe(t, dir, "--exec", script)

	r := mustRun(t, 1, 30*time.Second, "", sendArgs(srv.addr, dir, "--timeout", "3s", "fail")...)
	if r.stdout != "" {
		t.Errorf("a failed command produced a reply: %q", r.stdout)
	}
	if !strings.Contains(r.stderr, "0 of 1 replies") {
		t.Errorf("stderr: %q", r.stderr)
	}
	// In one connection, around a failure: the others are answered, in order.
	r = mustRun(t, 1, 30*time.Second, "", sendArgs(srv.addr, dir, "--timeout", "3s", "a", "fail", "b")...)
	if r.stdout != "[a]\n[b]\n" {
		t.Errorf("send printed %q, want \"[a]\\n[b]\\n\"", r.stdout)
	}
	// The server is alive and answers.
	r = mustRun(t, 0, 30*time.Second, "", sendArgs(srv.addr, dir, "ok", "fine")...)
	if r.stdout != "[ok]\n[fine]\n" {
		t.Errorf("send printed %q", r.stdout)
	}
	log := srv.stderr.String()
	if !strings.Contains(log, "exec failed") || !strings.Contains(log, "exit status 3") || !strings.Contains(log, "refusing fail") {
		t.Errorf("serve did not log the failed command:\n%s", log)
	}
}

func TestServeExecCatRepliesWithStdout(t *testing.T) {
	t.Parallel()
	dir := certDir(t)
	srv := startServe(t, dir, "--exec", "cat", "--exec-timeout", "5s")
	r := mustRun(t, 0, 30*time.Second, "", sendArgs(srv.addr, dir, "with\\backslash", "with\nnewline", "")...)
	if want := "with\\backslash\nwith\nnewline\n\n"; r.stdout != want {
		t.Errorf("send printed %q, want %q", r.stdout, want)
	}
}

func TestServeExecTimeoutKillsCommand(t *testing.T) {
	t.Parallel()
	dir := certDir(t)
	srv := startServe(t, dir, "--exec", `t=$(cat); [ "$t" = slow ] && sleep 30; printf %s "$t"`, "--exec-timeout", "300ms")
	start := time.Now()
	r := mustRun(t, 1, 30*time.Second, "", sendArgs(srv.addr, dir, "--timeout", "5s", "slow", "quick")...)
	if r.stdout != "quick\n" {
		t.Errorf("send printed %q, want only \"quick\\n\"", r.stdout)
	}
	if time.Since(start) > 20*time.Second {
		t.Errorf("the slow command was not killed in time")
	}
	waitFor(t, 5*time.Second, func() bool { return strings.Contains(srv.stderr.String(), "timed out after 300ms") },
		"serve did not log the timeout")
}

func TestServeMaxTokenSizeClosesOnlyThatConnection(t *testing.T) {
	t.Parallel()
	dir := certDir(t)
	srv := startServe(t, dir, "--max-token-size", "8", "--max-conns", "4", "--handshake-timeout", "5s",
		"--write-timeout", "5s", "--keepalive", "-1s")
	r := mustRun(t, 1, 30*time.Second, "", sendArgs(srv.addr, dir, "--timeout", "5s", "this is longer than eight bytes")...)
	if r.stdout != "" {
		t.Errorf("an oversized token got a reply: %q", r.stdout)
	}
	waitFor(t, 5*time.Second, func() bool { return strings.Contains(srv.stderr.String(), "code=token_too_large") },
		"serve did not log the oversized token")
	r = mustRun(t, 0, 30*time.Second, "", sendArgs(srv.addr, dir, "12345678")...)
	if r.stdout != "12345678\n" {
		t.Errorf("send printed %q", r.stdout)
	}
}

func TestServePortInUseExits1(t *testing.T) {
	t.Parallel()
	dir := certDir(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	args := append([]string{"serve", "--listen", ln.Addr().String()}, tlsArgs(dir, "server")...)
	r := mustRun(t, 1, 30*time.Second, "", args...)
	if r.stdout != "" {
		t.Errorf("stdout: %q", r.stdout)
	}
	if !strings.Contains(r.stderr, "listen failed") {
		t.Errorf("stderr: %q", r.stderr)
	}
}

func TestSendWithoutServerExits1(t *testing.T) {
	t.Parallel()
	dir := certDir(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nobody listens there now
	r := mustRun(t, 1, 30*time.Second, "", sendArgs(addr, dir, "hello")...)
	if !strings.Contains(r.stderr, "0 of 1 replies received: tokenserver: connect failed") {
		t.Errorf("stderr: %q", r.stderr)
	}
}

func TestServeSIGTERMSendsRemoteCloseAndExits0(t *testing.T) {
	t.Parallel()
	dir := certDir(t)
	srv := startServe(t, dir)
	host, portStr, _ := net.SplitHostPort(srv.addr)
	port, _ := strconv.Atoi(portStr)
	opts, err := tlsio.LoadFiles(filepath.Join(dir, "client.key"), filepath.Join(dir, "client.crt"), filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	connected := make(chan struct{}, 1)
	replies := make(chan string, 1)
	remoteClosed := make(chan struct{})
	closed := make(chan bool, 1)
	var remoteCloses atomic.Int32
	client, err := actors.NewClient(actors.ClientOptions{
		Host: host, Port: port, TLS: opts,
		OnConnect: func() { connected <- struct{}{} },
		OnToken:   func(tok []byte, _ *actors.Connection) { replies <- string(tok) },
		OnRemoteClose: func(c *actors.Connection) {
			if remoteCloses.Add(1) == 1 {
				close(remoteClosed)
			}
			c.Close()
		},
		OnClose: func(hadError bool) { closed <- hadError },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := client.Shutdown(ctx); err != nil {
			t.Errorf("client shutdown: %v", err)
		}
	}()
	select {
	case <-connected:
	case <-time.After(10 * time.Second):
		t.Fatal("client did not connect")
	}
	client.Send([]byte("before"))
	select {
	case r := <-replies:
		if r != "before" {
			t.Fatalf("reply %q", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no reply")
	}

	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-remoteClosed:
	case <-time.After(10 * time.Second):
		t.Fatal("client saw no remoteClose")
	}
	select {
	case hadError := <-closed:
		if hadError {
			t.Error("client closed with an error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("client did not close")
	}
	if code := srv.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("serve exited %d after SIGTERM, want 0\nstderr:\n%s", code, srv.stderr.String())
	}
	if s := srv.stderr.String(); !strings.Contains(s, "signal received") || !strings.Contains(s, `msg="server closed" hadError=false`) {
		t.Errorf("serve log:\n%s", s)
	}
}

// waitFor polls cond until it holds or fails the test after d.
func waitFor(t *testing.T, d time.Duration, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestServeSIGTERMForceClosesClientThatIgnoresRemoteClose(t *testing.T) {
	t.Parallel()
	dir := certDir(t)
	srv := startServe(t, dir)
	conn := dialClient(t, srv.addr, dir)
	// One round trip, so the server has the connection up.
	if _, err := conn.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if n, err := conn.Read(buf); err != nil || string(buf[:n]) != "ping\n" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}

	start := time.Now()
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The client reads remoteClose and then ignores it, keeping its side open.
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := conn.Read(buf); err != nil || string(buf[:n]) != "\\\n" {
		t.Fatalf("read %q, %v; want the remoteClose frame", buf[:n], err)
	}
	if code := srv.wait(t, actors.DefaultCloseTimeout+15*time.Second); code != 0 {
		t.Fatalf("serve exited %d, want 0\nstderr:\n%s", code, srv.stderr.String())
	}
	if took := time.Since(start); took < actors.DefaultCloseTimeout-time.Second {
		t.Errorf("serve exited after %v, before the close timeout", took)
	}
	if s := srv.stderr.String(); !strings.Contains(s, "code=forced_close") {
		t.Errorf("serve did not log the forced close:\n%s", s)
	}
}

// A server that allows more connections than the process has descriptors
// says so at start (and keeps serving).
func TestServeWarnsWhenDescriptorsCannotFit(t *testing.T) {
	dir := certDir(t)
	p := startServe(t, dir, "--max-conns", "100000000")
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(p.stderr.String(), "descriptor limit") },
		"a warning about the descriptor limit on stderr")
	r := mustRun(t, 0, 30*time.Second, "", sendArgs(p.addr, dir, "still serving")...)
	if r.stdout != "still serving\n" {
		t.Fatalf("reply %q", r.stdout)
	}
}
