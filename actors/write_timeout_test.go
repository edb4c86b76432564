package actors

import (
	"crypto/tls"
	"errors"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/tlsio"
)

// The write timeout end to end (issue 20: it was tested on the write pump
// alone). A server sends to a raw TLS client that never reads: once the
// socket buffers are full nothing moves, and after Limits.WriteTimeout the
// connection is cut as a slow consumer (the error wraps ErrSlowConsumer and
// tlsio.ErrWriteTimeout), then closed with hadError. Every token the server
// sent and did not write is reported, in order: the reported tokens are
// exactly the last ones sent (those that could be written went first). The
// server itself goes on.
func TestServerCutsClientThatStopsReading(t *testing.T) {
	const (
		writeTimeout = 300 * time.Millisecond
		tokenSize    = 4 << 10
		tokens       = 4096 // 16 MiB: far more than the socket buffers, under MaxQueue
	)
	conns := make(chan *Connection, 4)
	errs := make(chan error, 4)
	closes := make(chan bool, 4)
	listening := make(chan struct{}, 1)
	var mu sync.Mutex
	var dropped []uint64
	var reasons []error
	srv, err := NewServer(ServerOptions{
		Host: "127.0.0.1", TLS: testCerts(t).ServerOptions(),
		Limits:            Limits{WriteTimeout: writeTimeout},
		OnConnect:         func() { put(t, listening, struct{}{}) },
		OnConnection:      func(c *Connection) { put(t, conns, c) },
		OnConnectionError: func(_ *Connection, err error) { put(t, errs, err) },
		OnConnectionClose: func(_ *Connection, had bool) { put(t, closes, had) },
		OnDropped: func(_ *Connection, toks [][]byte, reason error) {
			mu.Lock()
			defer mu.Unlock()
			reasons = append(reasons, reason)
			for _, tok := range toks {
				n, err := checkNumbered(tok, tokenSize)
				if err != nil {
					t.Errorf("OnDropped: %v", err)
				}
				dropped = append(dropped, n)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer shutdownWithin(t, "server", srv.Shutdown)
	recv(t, listening, "listening")

	// The client: a handshake, then it never reads.
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(srv.Addr().(*net.TCPAddr).Port))
	raw, err := tls.DialWithDialer(&net.Dialer{Timeout: deadline}, "tcp", addr, clientTLS(t))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	c := recv(t, conns, "the server's connection")

	// Send until everything is taken, or the connection is cut meanwhile
	// (a slow machine may take longer than the write timeout to send it all).
	began := time.Now()
	accepted := uint64(0)
	for ; accepted < tokens; accepted++ {
		if !c.Send(numbered(accepted, tokenSize)) {
			if !c.IsDead() {
				t.Fatalf("Send refused token %d with %d bytes queued (under MaxQueue)", accepted, c.Queued())
			}
			break
		}
	}
	err = recv(t, errs, "the slow consumer error")
	if took := time.Since(began); took < writeTimeout {
		t.Errorf("cut %v after the sending began, before the write timeout (%v)", took, writeTimeout)
	}
	if !errors.Is(err, ErrSlowConsumer) || !errors.Is(err, tlsio.ErrWriteTimeout) {
		t.Fatalf("error %v, want ErrSlowConsumer wrapping tlsio.ErrWriteTimeout", err)
	}
	if had := recv(t, closes, "the connection's close"); !had {
		t.Error("close after the slow consumer error has hadError false")
	}
	if !c.IsDead() || c.Send([]byte("late")) {
		t.Error("the cut connection still takes tokens")
	}

	// OnDropped comes before the close event: everything is reported now.
	mu.Lock()
	defer mu.Unlock()
	if len(dropped) == 0 {
		t.Fatal("no token reported dropped, though the client read nothing")
	}
	first := dropped[0]
	for i, n := range dropped {
		if n != first+uint64(i) {
			t.Fatalf("reported tokens not in order, or not contiguous: %d at position %d after %d", n, i, first)
		}
	}
	if last := dropped[len(dropped)-1]; last != accepted-1 {
		t.Errorf("reported tokens end at %d, want the last one Send took, %d", last, accepted-1)
	}
	for _, r := range reasons {
		if !errors.Is(r, ErrMaybeSent) && !errors.Is(r, ErrNotSent) {
			t.Errorf("tokens dropped with %v, want ErrMaybeSent or ErrNotSent", r)
		}
	}
	t.Logf("%d tokens taken, %d written (into the socket buffers), %d reported dropped (%d events)",
		accepted, first, len(dropped), len(reasons))
	if st := srv.Status(); st != ONLINE {
		t.Errorf("server status %v after cutting one connection, want ONLINE", st)
	}
	within(t, deadline, "the cut connection to leave Connections()", func() bool { return len(srv.Connections()) == 0 })
}
