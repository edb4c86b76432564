package main

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"testing"

	"github.com/tokenserver/tokenserver/tlsio"
	"github.com/tokenserver/tokenserver/wire"
)

// evilServer is a crypto/tls token/1 echo server for tests whose replies go
// through mangle: given the 1-based number of a token on its connection and
// the token, it returns the replies to write (none, the token, a changed
// copy, several).
type evilServer struct {
	ln  net.Listener
	cfg *tls.Config
	wg  sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]bool
}

func startEvilServer(t *testing.T, certs *tlsio.DevCerts, mangle func(n int, token []byte) [][]byte) *evilServer {
	t.Helper()
	cfg, err := tlsio.ServerConfig(certs.ServerOptions())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &evilServer{ln: ln, cfg: cfg, conns: map[net.Conn]bool{}}
	s.wg.Go(func() {
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[raw] = true
			s.mu.Unlock()
			s.wg.Go(func() { s.serve(raw, mangle) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *evilServer) addr() string { return s.ln.Addr().String() }

func (s *evilServer) serve(raw net.Conn, mangle func(int, []byte) [][]byte) {
	defer raw.Close()
	tc := tls.Server(raw, s.cfg)
	if err := tlsio.Handshake(context.Background(), tc, 0); err != nil {
		return
	}
	dec, _ := wire.NewDecoder(wire.DefaultMaxTokenSize)
	buf := make([]byte, 64<<10)
	var frames []wire.Frame
	var out []byte
	n := 0
	for {
		k, err := tc.Read(buf)
		if k > 0 {
			var derr error
			frames, derr = dec.AppendFrames(frames[:0], buf[:k])
			if derr != nil {
				return
			}
			out = out[:0]
			for _, f := range frames {
				n++
				for _, r := range mangle(n, f.Token) {
					out = wire.AppendToken(out, r)
				}
			}
			if len(out) > 0 {
				if _, err := tc.Write(out); err != nil {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// flipReply returns a mangle that flips the low bit of the first byte of
// reply number which, and echoes every other token as is.
func flipReply(which int) func(int, []byte) [][]byte {
	return func(n int, tok []byte) [][]byte {
		if n == which && len(tok) > 0 {
			bad := append([]byte(nil), tok...)
			bad[0] ^= 1
			return [][]byte{bad}
		}
		return [][]byte{tok}
	}
}
