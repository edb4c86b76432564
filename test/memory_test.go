package test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
)

// The client side of TestIdleConnectionMemory runs in a child process (this
// test binary again), so that only the server's memory is measured here.
func init() {
	if os.Getenv("TOKENSERVER_IDLE_CLIENTS") == "" {
		return
	}
	n, _ := strconv.Atoi(os.Getenv("TOKENSERVER_IDLE_CLIENTS"))
	dir := os.Getenv("TOKENSERVER_CERTS")
	opts, err := tlsio.LoadFiles(dir+"/client.key", dir+"/client.crt", dir+"/ca.crt")
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	cfg, err := tlsio.ClientConfig(opts)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	conns := make([]net.Conn, 0, n)
	for i := 0; i < n; i++ {
		c, err := tlsio.Dial(context.Background(), os.Getenv("TOKENSERVER_ADDR"), cfg, tlsio.DialConfig{})
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		// One token each way, so the connection has done real work.
		_, _ = c.Write([]byte("hello\n"))
		buf := make([]byte, 16)
		_, _ = c.Read(buf)
		conns = append(conns, c)
	}
	fmt.Println("ready")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // hold them until told
	for _, c := range conns {
		c.Close()
	}
	os.Exit(0)
}

// serverMemory is the heap and goroutine stacks in use, after a GC.
func serverMemory() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

// TestIdleConnectionMemory measures what 1,000 idle mutually authenticated
// connections cost the server: at most 64 KiB each (heap plus stacks).
func TestIdleConnectionMemory(t *testing.T) {
	const n = 1000
	const perConnLimit = 64 << 10
	certs, err := tlsio.GenerateDevCerts()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := certs.WriteFiles(dir, false); err != nil {
		t.Fatal(err)
	}
	sys := actors.NewQuietSystem()
	up := make(chan struct{})
	srv, err := actors.NewServer(actors.ServerOptions{
		Host: "127.0.0.1", TLS: certs.ServerOptions(), Runtime: actors.Runtime{System: sys},
		MaxConnections: 2 * n,
		OnConnect:      func() { close(up) },
		OnToken:        func(tok []byte, c *actors.Connection) { c.Send(tok) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, srv.Shutdown) })
	waitClosed(t, up, "listening")
	before := serverMemory()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "TOKENSERVER_IDLE_CLIENTS="+strconv.Itoa(n),
		"TOKENSERVER_CERTS="+dir, "TOKENSERVER_ADDR="+srv.Addr().String())
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("client process: %q %v", line, err)
	}
	deadline := time.Now().Add(time.Minute)
	for len(srv.Connections()) < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling a count, bounded by the deadline
	}
	if got := len(srv.Connections()); got != n {
		t.Fatalf("%d connections, want %d", got, n)
	}
	after := serverMemory()
	per := (int64(after) - int64(before)) / n
	t.Logf("%d idle connections: %.1f KiB each (heap+stacks %d -> %d bytes)", n, float64(per)/1024, before, after)
	stdin.Close()
	_ = cmd.Wait()
	if per > perConnLimit {
		t.Errorf("an idle connection costs %d bytes, over the %d limit", per, perConnLimit)
	}
}
