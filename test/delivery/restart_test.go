package delivery

import (
	"bufio"
	"context"
	"fmt"
	"net"
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
	"github.com/tokenserver/tokenserver/supervisor"
	"github.com/tokenserver/tokenserver/tlsio"
)

// The child process: this test binary run again with childEnv set to
// "DIR ADDR" is a token/2 echo server on ADDR with the certificates of DIR.
// It prints "listening", then one line "N" or "N again" per token its
// handler takes (N its number; "again" when flagged redelivered), written
// before the handler returns, so before the token can be acknowledged, and
// "connected P" for each connection (P its PeerReceived).
const childEnv = "TOKENSERVER_DELIVERY_CHILD"

func runChildServer() int {
	dir, addr, _ := strings.Cut(os.Getenv(childEnv), " ")
	opts, err := tlsio.LoadServerFiles(filepath.Join(dir, "server.key"), filepath.Join(dir, "server.crt"), filepath.Join(dir, "ca.crt"))
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	var mu sync.Mutex
	line := func(s string) { // a write per line, unbuffered: a kill loses none printed
		mu.Lock()
		_, _ = os.Stdout.WriteString(s + "\n")
		mu.Unlock()
	}
	up := make(chan struct{}, 1)
	srv, err := actors.NewServer(actors.ServerOptions{
		Host: host, Port: p, TLS: opts,
		OnConnect:    func() { up <- struct{}{} },
		OnConnection: func(c *actors.Connection) { line("connected " + strconv.FormatUint(c.PeerReceived(), 10)) },
		OnToken: func(tok []byte, c *actors.Connection) {
			if n, ok := numberOf(tok); ok {
				line(strconv.FormatUint(n, 10))
			}
			c.Send(tok)
		},
		OnRedelivered: func(tok []byte, c *actors.Connection) {
			if n, ok := numberOf(tok); ok {
				line(strconv.FormatUint(n, 10) + " again")
			}
			c.Send(tok)
		},
	})
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	select {
	case <-up:
		line("listening")
	case <-time.After(deadline):
		fmt.Println("error: not listening")
		return 1
	}
	time.Sleep(2 * deadline) // until the test kills it
	_ = srv.Shutdown(context.Background())
	return 0
}

// child is a server process of the test.
type child struct {
	cmd   *exec.Cmd
	lines chan string
	done  chan struct{}
}

func startChild(t *testing.T, dir, addr string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dir+" "+addr)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, lines: make(chan string, 1<<16), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-c.done
		_ = cmd.Wait()
	})
	select {
	case l := <-c.lines:
		if l != "listening" {
			t.Fatalf("server process: %s", l)
		}
	case <-time.After(deadline):
		t.Fatal("the server process did not listen")
	}
	return c
}

// kill ends the process at once (SIGKILL): its sessions are gone.
func (c *child) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-c.done
	_ = c.cmd.Wait()
}

// A token/2 server process is killed (SIGKILL) while a client sends, and
// started again on the same port: the client's next connection finds its
// session unknown and sends again what the dead server had not
// acknowledged, flagged as redelivered. Across the two processes every
// token reaches a server's handler at least once, and every one the second
// process got that the first had got too came flagged.
func TestServerRestartRedeliversFlagged(t *testing.T) {
	const n = 20_000
	dir := t.TempDir()
	certs, err := tlsio.GenerateDevCerts()
	if err != nil {
		t.Fatal(err)
	}
	if err := certs.WriteFiles(dir, false); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	first := startChild(t, dir, addr)

	_, port, _ := net.SplitHostPort(addr)
	var dropped drops
	var echoes atomic.Uint64
	lost := make(chan struct{}, 4)
	policy := supervisor.Policy{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond, Multiplier: 2, Unlimited: true}
	cl := startSending(t, actors.ClientOptions{
		Host: "127.0.0.1", Port: atoi(t, port), TLS: certs.ClientOptions(),
		Reconnect: &actors.ReconnectOptions{Policy: policy, BufferSize: actors.DefaultReconnectBuffer},
		OnToken:   func([]byte, *actors.Connection) { echoes.Add(1) },
		OnClose: func(bool) {
			select {
			case lost <- struct{}{}:
			default:
			}
		},
		OnDropped: func(toks [][]byte, reason error) { dropped.add("client", len(toks), reason) },
	}, n/2)
	// The first process takes a third of the tokens (two thirds of the
	// first half), then dies.
	got1 := map[uint64]bool{}
	for len(got1) < n/3 {
		select {
		case l, ok := <-first.lines:
			if !ok {
				t.Fatal("the first server process ended")
			}
			if !strings.HasPrefix(l, "connected") {
				num, _ := parseLine(t, l)
				got1[num] = true
			}
		case <-time.After(deadline):
			t.Fatalf("the first server process got %d tokens", len(got1))
		}
	}
	first.kill(t)
	for l := range first.lines { // printed before the kill
		if !strings.HasPrefix(l, "connected") {
			num, _ := parseLine(t, l)
			got1[num] = true
		}
	}
	// Once the client has seen its connection end, every echo of the
	// first process it read is counted: the second process numbers its own
	// echoes on from there.
	select {
	case <-lost:
	case <-time.After(deadline):
		t.Fatal("the client did not see its connection end")
	}
	fromFirst := echoes.Load()
	// The other half goes to the second process (the reconnect buffer
	// holds what comes before it listens).
	for i := uint64(n / 2); i < n; i++ {
		if !cl.Send(numbered(i)) {
			t.Fatalf("Send refused token %d", i)
		}
	}
	second := startChild(t, dir, addr)
	got2, again := map[uint64]bool{}, map[uint64]bool{}
	connects := 0
	missingNow := func() int {
		missing := 0
		for i := range uint64(n) {
			if !got1[i] && !got2[i] {
				missing++
			}
		}
		return missing
	}
	// The first process may have taken every token before it died: then
	// nothing is left to send again.
	for missing := missingNow(); missing > 0; {
		select {
		case l := <-second.lines:
			if p, ok := strings.CutPrefix(l, "connected "); ok {
				connects++
				if p != strconv.FormatUint(fromFirst, 10) {
					t.Errorf("the second process's connection: PeerReceived %s, want the %d echoes the client read from the first", p, fromFirst)
				}
				continue
			}
			num, flagged := parseLine(t, l)
			got2[num] = true
			if flagged {
				again[num] = true
			}
			missing = missingNow()
		case <-time.After(deadline):
			t.Fatalf("after the restart, %d tokens never reached a server (the second process got %d, %d connections; client status %v, buffered %d, stats %+v)",
				missing, len(got2), connects, cl.Status(), cl.Buffered(), cl.Stats())
		}
	}
	repeats, unflagged := 0, 0
	for i := range got2 {
		if got1[i] {
			repeats++
			if !again[i] {
				unflagged++
			}
		}
	}
	t.Logf("%d tokens: the first process got %d, the second %d, %d of them again (%d flagged redelivered); none lost", n, len(got1), len(got2), repeats, len(again))
	if connects == 0 {
		t.Error("the second process saw no connection: PeerReceived not checked")
	}
	if unflagged > 0 {
		t.Errorf("%d tokens the first process had were delivered again without the redelivered flag", unflagged)
	}
	dropped.check(t)
}

func parseLine(t *testing.T, l string) (uint64, bool) {
	t.Helper()
	num, rest, _ := strings.Cut(l, " ")
	v, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		t.Fatalf("server process printed %q", l)
	}
	return v, rest == "again"
}
