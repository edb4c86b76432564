package delivery

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// resetProxy is a TCP proxy on loopback between a client and a server that
// resets both sockets of a connection (SO_LINGER 0, so each side reads
// ECONNRESET rather than an orderly end) once the client has sent Every
// bytes through it, Resets times in all; connections after the last reset
// pass untouched. Bytes still in kernel buffers when it resets are lost, as
// they are when a NAT or a load balancer drops a connection.
type resetProxy struct {
	ln       net.Listener
	upstream string
	every    int64
	resets   atomic.Int32 // resets still to make
	done     atomic.Int32 // resets made
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]bool
	closed   bool
}

func startResetProxy(t *testing.T, upstream string, every int64, resets int) *resetProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &resetProxy{ln: ln, upstream: upstream, every: every, conns: map[net.Conn]bool{}}
	p.resets.Store(int32(resets))
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// Addr is where clients connect.
func (p *resetProxy) Addr() string { return p.ln.Addr().String() }

// Resets is how many connections the proxy has reset so far.
func (p *resetProxy) Resets() int { return int(p.done.Load()) }

func (p *resetProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *resetProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = true
	return true
}

func (p *resetProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

func (p *resetProxy) serve(client net.Conn) {
	defer p.wg.Done()
	server, err := net.DialTimeout("tcp", p.upstream, 10*time.Second)
	if err != nil {
		client.Close()
		return
	}
	if !p.track(client) || !p.track(server) {
		client.Close()
		server.Close()
		return
	}
	defer p.untrack(client)
	defer p.untrack(server)
	reset := func() {
		for _, c := range []net.Conn{client, server} {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			c.Close()
		}
	}
	limit := int64(-1)
	if p.resets.Add(-1) >= 0 {
		limit = p.every
	}
	var once sync.Once
	end := func() { once.Do(func() { client.Close(); server.Close() }) }
	back := make(chan struct{})
	go func() { // server to client, untouched
		defer close(back)
		_, _ = io.Copy(client, server)
		if tc, ok := client.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()
	buf := make([]byte, 32<<10)
	var sent int64
	for {
		n, err := client.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			if limit >= 0 && sent+int64(n) >= limit {
				chunk = chunk[:limit-sent]
				_, _ = server.Write(chunk)
				p.done.Add(1)
				reset()
				<-back
				return
			}
			if _, werr := server.Write(chunk); werr != nil {
				break
			}
			sent += int64(n)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				if tc, ok := server.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
				}
				<-back
			}
			break
		}
	}
	end()
	<-back
}

// Close stops the proxy and closes every connection through it.
func (p *resetProxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}
