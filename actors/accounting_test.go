package actors

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/wire"
)

// The accounting rule: every token Send took is written to the socket or
// reported by OnDropped with its reason (ErrMaybeSent: in the write that
// failed; ErrNotSent: never written), in order, on standalone connections,
// servers and clients. Here the peer reads part of the stream and closes;
// the counts must add up.

const acctTokens = 5000 // about 790 KB with orderSize

// ledger records what one side of a test saw: the tokens the peer read, in
// order, and the tokens reported dropped, in the order of the reports.
type ledger struct {
	mu       sync.Mutex
	received []uint64
	dropped  []uint64
	reasons  []error // one per dropped token
	badToken error
	// sizeOf is the size of token n (orderSize when nil).
	sizeOf func(n uint64) int
}

// read records a token the peer read.
func (l *ledger) read(tok []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.received = append(l.received, l.number(tok))
}

// drop is an OnDropped callback.
func (l *ledger) drop(toks [][]byte, reason error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, tok := range toks {
		l.dropped = append(l.dropped, l.number(tok))
		l.reasons = append(l.reasons, reason)
	}
}

func (l *ledger) number(tok []byte) uint64 {
	if len(tok) < 8 {
		l.badToken = fmt.Errorf("a token of %d bytes", len(tok))
		return 1 << 63
	}
	size := orderSize
	if l.sizeOf != nil {
		size = l.sizeOf
	}
	n, err := checkNumbered(tok, size(binary.BigEndian.Uint64(tok)))
	if err != nil && l.badToken == nil {
		l.badToken = err
	}
	return n
}

// check verifies that the tokens 0..accepted-1 are, in this order: read by
// the peer (0..r-1); then lost in the kernel's buffers with the socket
// (only when exact is false: a TCP socket; over net.Pipe a write returns only
// once the peer has read it); then reported maybe sent; then reported not
// sent (..accepted-1). Nothing is missing, duplicated or out of order.
func (l *ledger) check(t *testing.T, accepted int, exact bool) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.badToken != nil {
		t.Errorf("a corrupt token: %v", l.badToken)
	}
	for i, n := range l.received {
		if n != uint64(i) {
			t.Fatalf("the peer read token %d in place %d", n, i)
		}
	}
	r := len(l.received)
	if r > accepted {
		t.Fatalf("the peer read %d tokens, Send took %d", r, accepted)
	}
	d := accepted - len(l.dropped) // the first dropped token, if all is well
	for i, n := range l.dropped {
		if n != uint64(d+i) {
			t.Fatalf("dropped tokens %v..., want %d..%d in order", l.dropped[:min(i+1, 10)], d, accepted-1)
		}
	}
	notSentSeen := false
	for i, reason := range l.reasons {
		switch {
		case errors.Is(reason, ErrNotSent):
			notSentSeen = true
		case errors.Is(reason, ErrMaybeSent):
			if notSentSeen {
				t.Errorf("token %d reported maybe sent after tokens reported not sent", l.dropped[i])
			}
		default:
			t.Errorf("token %d dropped with %v, want ErrMaybeSent or ErrNotSent", l.dropped[i], reason)
		}
	}
	switch {
	case d < r:
		t.Errorf("tokens %d..%d were read by the peer and reported dropped too", d, r-1)
	case exact && d != r:
		t.Errorf("tokens %d..%d were neither read by the peer nor reported dropped", r, d-1)
	}
}

// connection is a standalone connection over conn whose dropped tokens go
// to l, and the channel its close event goes to.
func (l *ledger) connection(t *testing.T, conn net.Conn) (*Connection, chan bool) {
	t.Helper()
	closes := make(chan bool, 1)
	c, err := NewConnection(conn, ConnectionOptions{
		OnDropped: l.drop,
		OnClose:   func(had bool) { put(t, closes, had) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, closes
}

// sendAll sends tokens 0..acctTokens-1 until send refuses one, and returns
// how many it took. A refusal is allowed only once dead says so.
func sendAll(t *testing.T, send func([]byte) bool, dead func() bool) int {
	t.Helper()
	for i := 0; i < acctTokens; i++ {
		if !send(numbered(uint64(i), orderSize(uint64(i)))) {
			if !dead() {
				t.Errorf("Send refused token %d on a live connection", i)
			}
			return i
		}
	}
	return acctTokens
}

// readThenClose reads exactly limit bytes of frames from conn (or until it
// fails), records the tokens, and closes conn.
func readThenClose(conn net.Conn, limit int, l *ledger) {
	defer conn.Close()
	dec, _ := wire.NewDecoder(wire.DefaultMaxTokenSize)
	buf := make([]byte, 4096)
	var frames []wire.Frame
	for left := limit; left > 0; {
		n, err := conn.Read(buf[:min(left, len(buf))])
		left -= n
		frames, _ = dec.AppendFrames(frames[:0], buf[:n])
		for _, f := range frames {
			l.read(f.Token)
		}
		if err != nil {
			return
		}
	}
}

// A standalone connection over net.Pipe whose peer reads limit bytes and
// closes: the accounting is exact (a pipe write returns once it is read).
func TestConnectionAccountingPeerClosesMidway(t *testing.T) {
	for _, limit := range []int{1, 999, 64<<10 + 13, 300 << 10} {
		t.Run(strconv.Itoa(limit), func(t *testing.T) {
			a, b := net.Pipe()
			var l ledger
			c, closes := l.connection(t, a)
			peerDone := make(chan struct{})
			go func() { defer close(peerDone); readThenClose(b, limit, &l) }()
			accepted := sendAll(t, c.Send, c.IsDead)
			recv(t, peerDone, "the peer")
			recv(t, closes, "the close")
			l.check(t, accepted, true)
			t.Logf("Send took %d; the peer read %d; %d reported dropped", accepted, len(l.received), len(l.dropped))
		})
	}
}

// A server sending to a raw TLS client that reads limit bytes and closes.
func TestServerAccountingClientClosesMidway(t *testing.T) {
	for _, limit := range []int{1, 64<<10 + 13} {
		t.Run(strconv.Itoa(limit), func(t *testing.T) {
			var l ledger
			conns := make(chan *Connection, 1)
			closes := make(chan bool, 1)
			listening := make(chan struct{}, 1)
			srv, err := NewServer(ServerOptions{
				Host: "127.0.0.1", TLS: testCerts(t).ServerOptions(),
				OnConnect:         func() { put(t, listening, struct{}{}) },
				OnConnection:      func(c *Connection) { put(t, conns, c) },
				OnConnectionClose: func(_ *Connection, had bool) { put(t, closes, had) },
				OnDropped:         func(_ *Connection, toks [][]byte, reason error) { l.drop(toks, reason) },
			})
			if err != nil {
				t.Fatal(err)
			}
			defer shutdownWithin(t, "server", srv.Shutdown)
			recv(t, listening, "listening")
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(srv.Addr().(*net.TCPAddr).Port))
			raw, err := tls.DialWithDialer(&net.Dialer{Timeout: deadline}, "tcp", addr, clientTLS(t))
			if err != nil {
				t.Fatal(err)
			}
			_ = raw.SetDeadline(time.Now().Add(deadline))
			c := recv(t, conns, "the server's connection")
			peerDone := make(chan struct{})
			go func() { defer close(peerDone); readThenClose(raw, limit, &l) }()
			accepted := sendAll(t, c.Send, c.IsDead)
			recv(t, peerDone, "the client")
			recv(t, closes, "the connection's close")
			l.check(t, accepted, false)
			t.Logf("Send took %d; the client read %d; %d reported dropped", accepted, len(l.received), len(l.dropped))
		})
	}
}

// A client sending to a plain TLS server that reads limit bytes and closes.
// Without a reconnect buffer, what the client did not write is reported.
func TestClientAccountingServerClosesMidway(t *testing.T) {
	for _, limit := range []int{1, 64<<10 + 13} {
		t.Run(strconv.Itoa(limit), func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			var l ledger
			peerDone := make(chan struct{})
			go func() {
				defer close(peerDone)
				raw, err := ln.Accept()
				if err != nil {
					t.Errorf("accept: %v", err)
					return
				}
				_ = raw.SetDeadline(time.Now().Add(deadline))
				tc := tls.Server(raw, serverTLS(t))
				if err := tc.Handshake(); err != nil {
					t.Errorf("handshake: %v", err)
					raw.Close()
					return
				}
				readThenClose(tc, limit, &l)
			}()
			connected := make(chan struct{}, 1)
			closes := make(chan bool, 1)
			cli, err := NewClient(ClientOptions{
				Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, TLS: testCerts(t).ClientOptions(),
				OnConnect: func() { put(t, connected, struct{}{}) },
				OnClose:   func(had bool) { put(t, closes, had) },
				OnDropped: l.drop,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer shutdownWithin(t, "client", cli.Shutdown)
			recv(t, connected, "connected")
			conn := cli.Connection()
			accepted := sendAll(t, cli.Send, conn.IsDead)
			recv(t, peerDone, "the server")
			recv(t, closes, "the client's close")
			l.check(t, accepted, false)
			t.Logf("Send took %d; the server read %d; %d reported dropped", accepted, len(l.received), len(l.dropped))
		})
	}
}
