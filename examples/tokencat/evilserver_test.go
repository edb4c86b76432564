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

// evilServer is a crypto/tls echo server for tests whose replies go
// through mangle: given the 1-based number of a token on its connection and
// the token, it returns the replies to write (none, the token, a changed
// copy, several). It speaks token/1 without ALPN, or token/2 when started
// by startEvilServer2, departing from that protocol as its twist says.
type evilServer struct {
	ln    net.Listener
	cfg   *tls.Config
	twist *twist2 // nil: token/1
	wg    sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]bool
}

// twist2 is how a token/2 evilServer departs from the protocol, beyond its
// replies: its WELCOME, its ACKs, its end.
type twist2 struct {
	welcome wire.Welcome
	// ack is the ACK it sends after the replies to a read, given the number
	// of tokens read so far; 0 sends none. nil acknowledges what was read.
	ack func(read uint64) uint64
	// noEnd closes the connection at the client's END instead of answering
	// with END.
	noEnd bool
}

func startEvilServer(t *testing.T, certs *tlsio.DevCerts, mangle func(n int, token []byte) [][]byte) *evilServer {
	return startEvilServer2(t, certs, mangle, nil)
}

// startEvilServer2 is startEvilServer speaking token/2 (selected by ALPN)
// with twist; with a nil twist, it is startEvilServer.
func startEvilServer2(t *testing.T, certs *tlsio.DevCerts, mangle func(n int, token []byte) [][]byte, twist *twist2) *evilServer {
	t.Helper()
	cfg, err := tlsio.ServerConfig(certs.ServerOptions())
	if err != nil {
		t.Fatal(err)
	}
	if twist != nil {
		cfg.NextProtos = []string{wire.ProtocolToken2}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &evilServer{ln: ln, cfg: cfg, twist: twist, conns: map[net.Conn]bool{}}
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
	codec := wire.Token1
	if s.twist != nil {
		if !s.twist.greet(tc) {
			return
		}
		codec = wire.Token2
	}
	dec, _ := codec.NewDecoder(wire.DefaultMaxTokenSize)
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
			ended := false
			for _, f := range frames {
				switch f.Kind {
				case wire.KindToken:
					n++
					for _, r := range mangle(n, f.Token) {
						out = codec.AppendToken(out, r)
					}
				case wire.KindEnd:
					ended = true
				}
			}
			if s.twist != nil {
				var stop bool
				if out, stop = s.twist.after(out, uint64(n), ended); stop {
					return
				}
			}
			if len(out) > 0 {
				if _, err := tc.Write(out); err != nil {
					return
				}
			}
			if ended {
				_ = tc.CloseWrite()
			}
		}
		if err != nil {
			return
		}
	}
}

// greet reads the client's HELLO and answers with the twist's WELCOME.
func (tw *twist2) greet(tc *tls.Conn) bool {
	if _, err := wire.ReadHello(tc); err != nil {
		return false
	}
	_, err := tc.Write(wire.AppendWelcome(nil, tw.welcome))
	return err == nil
}

// after appends to out, the replies to a read, the twist's ACK of the read
// tokens of the connection so far, and END when the client's END came; or
// it says to close at once, without END.
func (tw *twist2) after(out []byte, read uint64, ended bool) ([]byte, bool) {
	ack := read
	if tw.ack != nil {
		ack = tw.ack(read)
	}
	if ack > 0 {
		out = wire.AppendAck(out, ack)
	}
	if !ended {
		return out, false
	}
	if tw.noEnd {
		return out, true
	}
	return wire.AppendEnd(out), false
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
