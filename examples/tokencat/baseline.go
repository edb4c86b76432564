package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"

	"github.com/tokenserver/tokenserver/tlsio"
)

// baselineServer is bench --baseline: a plain crypto/tls echo loop with the
// token/1 framing and no actors, one goroutine per connection, as the
// reference point for the actors server on the same machine in the same run.
// Echo is byte-identical, so frames go back as they came, escapes and all,
// without decoding.
type baselineServer struct {
	ln  net.Listener
	cfg *tls.Config
	wg  sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func startBaselineServer(cfg *tls.Config) (*baselineServer, error) {
	ln, err := tlsio.Listen(context.Background(), "127.0.0.1:0", tlsio.ListenConfig{})
	if err != nil {
		return nil, err
	}
	s := &baselineServer{ln: ln, cfg: cfg, conns: map[net.Conn]struct{}{}}
	s.wg.Go(s.acceptLoop)
	return s, nil
}

func (s *baselineServer) addr() string { return s.ln.Addr().String() }

func (s *baselineServer) acceptLoop() {
	for {
		raw, err := s.ln.Accept()
		if err != nil {
			return // closed
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			raw.Close()
			return
		}
		s.conns[raw] = struct{}{}
		s.wg.Go(func() { s.serve(raw) })
		s.mu.Unlock()
	}
}

// serve echoes the frames of one connection: read up to each newline, write
// the frame back through a buffered writer, flush when no more input is
// already buffered.
func (s *baselineServer) serve(raw net.Conn) {
	defer func() {
		s.mu.Lock()
		delete(s.conns, raw)
		s.mu.Unlock()
		raw.Close()
	}()
	tc := tls.Server(raw, s.cfg)
	if err := tlsio.Handshake(context.Background(), tc, 0); err != nil {
		return
	}
	defer tc.Close()
	r := bufio.NewReaderSize(tc, 64<<10)
	w := bufio.NewWriterSize(tc, 64<<10)
	for {
		frame, err := r.ReadSlice('\n')
		if len(frame) > 0 {
			if _, werr := w.Write(frame); werr != nil {
				return
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue // a frame longer than the buffer: the rest follows
		}
		if err != nil {
			_ = w.Flush()
			return
		}
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return
			}
		}
	}
}

// close stops accepting, closes every connection and waits for their
// goroutines.
func (s *baselineServer) close() error {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	err := s.ln.Close()
	s.wg.Wait()
	return err
}
