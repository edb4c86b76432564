//go:build linux

package cluster

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitLines waits until the node has printed a line containing each of s.
func (n *node) waitLines(t *testing.T, within time.Duration, s ...string) {
	t.Helper()
	for _, l := range s {
		n.waitLine(t, l, within)
	}
}

// A fresh start of three nodes at the default log level, a token through
// them, and a clean stop (SIGTERM) of one: every node prints its own lines
// only (joined, one per membership change, listening, the grain's
// activation) and nothing on stderr: none of Proto.Actor's lines about
// peers not up yet or gone, no gossip warnings, no HTTP server banner.
// With either membership provider.
func TestQuietNodes(t *testing.T) { providers(t, 3, quietNodes) }

func quietNodes(t *testing.T, e *env) {
	e.logLevel = "" // the example's default
	listen := "127.0.0.1:" + strconv.Itoa(freePorts(t, 1)[0])
	h1 := e.start("handler", "h1")
	h2 := e.start("handler", "h2")
	f1 := e.start("front", "f1", "--listen", listen)
	f1.waitLine(t, "listening on", 30*time.Second)
	addr := map[*node]string{}
	for _, n := range []*node{h1, h2, f1} {
		addr[n] = n.remoteAddr(t)
	}
	h1.waitLines(t, 10*time.Second, "member "+addr[h2]+" (handler) joined", "member "+addr[f1]+" (front) joined")
	h2.waitLines(t, 10*time.Second, "member "+addr[h1]+" (handler) joined", "member "+addr[f1]+" (front) joined")
	f1.waitLines(t, 10*time.Second, "member "+addr[h1]+" (handler) joined", "member "+addr[h2]+" (handler) joined")
	r, err := e.ask(t, listen, "quiet?")
	if err != nil {
		t.Fatal(err)
	}
	// The handler node that does not hold the grain stops cleanly.
	stopped, kept := h2, h1
	if strings.HasSuffix(r, "@h2") {
		stopped, kept = h1, h2
	}
	_ = stopped.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-stopped.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s still running 10 s after SIGTERM", stopped.name)
	}
	left := "member " + addr[stopped] + " (handler) left"
	kept.waitLine(t, left, 10*time.Second)
	f1.waitLine(t, left, 10*time.Second)
	// A second token, through what remains.
	if _, err := e.ask(t, listen, "still quiet?"); err != nil {
		t.Fatal(err)
	}
	// One refresh more, for late lines about the stopped node.
	time.Sleep(3 * refresh)

	for _, n := range []*node{h1, h2, f1} {
		role := map[*node]string{h1: "handler", h2: "handler", f1: "front"}[n]
		n.mu.Lock()
		lines := append([]string(nil), n.lines...)
		n.mu.Unlock()
		for _, l := range lines {
			if !strings.HasPrefix(l, role+" "+n.name+" ") && !strings.HasPrefix(l, role+" "+n.name+":") &&
				!strings.HasPrefix(l, "grain ") {
				t.Errorf("%s printed a line that is not the example's own: %q", n.name, l)
			}
		}
		b, err := os.ReadFile(n.stderr)
		if err != nil {
			t.Fatal(err)
		}
		if s := strings.TrimSpace(string(b)); s != "" {
			t.Errorf("%s wrote to stderr:\n%s", n.name, s)
		}
		t.Logf("%s:\n%s", n.name, strings.Join(lines, "\n"))
	}
}

// The automanaged provider's health endpoint, which tells anyone the node's
// id, address and kinds, listens on --host only: reachable at
// 127.0.0.1:PORT (the peers poll it there), refused at 127.0.0.2:PORT,
// which a socket bound to every interface would accept.
func TestHealthEndpointOnHostOnly(t *testing.T) {
	// 127.0.0.2 must reach a socket bound to every interface here (Linux
	// routes 127.0.0.0/8 to the loopback interface), or the test proves
	// nothing.
	probe, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp", "127.0.0.2:"+strconv.Itoa(probe.Addr().(*net.TCPAddr).Port), 5*time.Second)
	_ = probe.Close()
	if err != nil {
		t.Skipf("127.0.0.2 does not reach a socket on 0.0.0.0 here: %v", err)
	}
	_ = c.Close()

	e := newEnv(t, 1)
	h1 := e.start("handler", "h1")
	remote := h1.remoteAddr(t)
	port := strings.TrimPrefix(e.peers[0], "127.0.0.1:")
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://127.0.0.1:" + port + "/_health")
	if err != nil {
		t.Fatalf("the health endpoint on --host: %v", err)
	}
	var health struct {
		Address string   `json:"address"`
		Port    int      `json:"port"`
		Kinds   []string `json:"kinds"`
	}
	err = json.NewDecoder(resp.Body).Decode(&health)
	_ = resp.Body.Close()
	if err != nil || fmt.Sprintf("%s:%d", health.Address, health.Port) != remote {
		t.Fatalf("the health endpoint says %+v (%v), want the node's remote address %s", health, err, remote)
	}
	if resp, err := client.Get("http://127.0.0.2:" + port + "/_health"); err == nil {
		_ = resp.Body.Close()
		t.Fatalf("the health endpoint answers on 127.0.0.2 (status %d): it listens on every interface", resp.StatusCode)
	}
}
