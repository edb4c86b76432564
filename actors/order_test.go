package actors

import (
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"testing"
)

// The order rule: tokens arrive in the order they were sent, whatever the
// mix of Send and SendBatch, and however the stream is cut into chunks
// (frames split across reads, many frames in one read).

const orderCount = 20_000

// orderSize is the size of token n in the order tests: 8 to 307 bytes, so
// that frames straddle the read chunks in every possible way.
func orderSize(n uint64) int { return 8 + int(n*37%300) }

// sendOrdered sends tokens 0..count-1 on send (one at a time) and batch (the
// tokens of [i, i+k) at once), alternating between the two, and reports the
// first refusal on t. It returns how many tokens were taken.
func sendOrdered(t *testing.T, count int, send func([]byte) bool, batch func([][]byte) bool) int {
	i := 0
	for i < count {
		if i%3 == 0 && batch != nil {
			k := min(1+i%17, count-i)
			toks := make([][]byte, k)
			for j := range toks {
				toks[j] = numbered(uint64(i+j), orderSize(uint64(i+j)))
			}
			if !batch(toks) {
				t.Errorf("SendBatch refused tokens %d..%d", i, i+k-1)
				return i
			}
			i += k
			continue
		}
		if !send(numbered(uint64(i), orderSize(uint64(i)))) {
			t.Errorf("Send refused token %d", i)
			return i
		}
		i++
	}
	return i
}

// orderChecker checks, on actor goroutines, that tokens arrive numbered 0,
// 1, 2... It closes done when count have, or at the first one out of place
// (reported with t.Errorf: it runs on an actor goroutine).
type orderChecker struct {
	t     *testing.T
	what  string
	count int
	done  chan struct{}

	mu   sync.Mutex
	next uint64
	bad  bool
}

func newOrderChecker(t *testing.T, what string, count int) *orderChecker {
	return &orderChecker{t: t, what: what, count: count, done: make(chan struct{})}
}

// token checks one token.
func (o *orderChecker) token(tok []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.bad {
		return
	}
	if int(o.next) == o.count {
		o.t.Errorf("%s: a token after the last one: %q", o.what, tok)
		o.bad = true
		return
	}
	var err error
	if len(tok) < 8 {
		err = fmt.Errorf("%s: a token of %d bytes where token %d was expected", o.what, len(tok), o.next)
	} else if n := binary.BigEndian.Uint64(tok); n != o.next {
		err = fmt.Errorf("%s: token %d arrived where token %d was expected", o.what, n, o.next)
	} else if _, cerr := checkNumbered(tok, orderSize(n)); cerr != nil {
		err = fmt.Errorf("%s: %w", o.what, cerr)
	}
	if err != nil {
		o.t.Error(err)
		o.bad = true
		close(o.done)
		return
	}
	o.next++
	if int(o.next) == o.count {
		close(o.done)
	}
}

// Over net.Pipe, between two standalone connections, with small reads.
func TestConnectionKeepsOrderOverPipe(t *testing.T) {
	a, b := net.Pipe()
	got := newOrderChecker(t, "pipe", orderCount)
	closes := make(chan bool, 2)
	ca, err := NewConnection(a, ConnectionOptions{
		OnClose: func(had bool) { put(t, closes, had) },
		OnError: func(err error) { t.Errorf("sender: %v", err) },
	})
	if err != nil {
		t.Fatal(err)
	}
	cb, err := NewConnection(b, ConnectionOptions{
		Limits:  Limits{ReadBufferSize: 1000},
		OnToken: func(tok []byte, _ *Connection) { got.token(tok) },
		OnClose: func(had bool) { put(t, closes, had) },
		OnError: func(err error) { t.Errorf("receiver: %v", err) },
	})
	if err != nil {
		t.Fatal(err)
	}
	sendOrdered(t, orderCount, ca.Send, ca.SendBatch)
	recv(t, got.done, "every token")
	ca.Close()
	for i := 0; i < 2; i++ {
		if recv(t, closes, "both closes") {
			t.Error("a close had an error")
		}
	}
	if !cb.IsDead() {
		t.Error("the receiving end is not dead after its close event")
	}
}

// Over TLS: the client sends, the server checks the order and echoes each
// token back (OnTokens and SendBatch, a read at a time), and the client
// checks the order of the echoes.
func TestServerAndClientKeepOrderOverTLS(t *testing.T) {
	atServer := newOrderChecker(t, "server", orderCount)
	atClient := newOrderChecker(t, "client", orderCount)
	srv := listeningServer(t, ServerOptions{
		Limits: Limits{ReadBufferSize: 1500},
		OnTokens: func(toks [][]byte, c *Connection) {
			for _, tok := range toks {
				atServer.token(tok)
			}
			if !c.SendBatch(toks) {
				t.Errorf("the server's SendBatch refused %d tokens", len(toks))
			}
		},
		OnConnectionError: func(_ *Connection, err error) { t.Errorf("server connection: %v", err) },
	})
	cli := connectedClient(t, srv, ClientOptions{
		Limits:  Limits{ReadBufferSize: 700},
		OnToken: func(tok []byte, _ *Connection) { atClient.token(tok) },
		OnError: func(err error) { t.Errorf("client: %v", err) },
	})
	conn := cli.Connection()
	sendOrdered(t, orderCount, cli.Send, conn.SendBatch)
	recv(t, atServer.done, "every token at the server")
	recv(t, atClient.done, "every echo at the client")
}
