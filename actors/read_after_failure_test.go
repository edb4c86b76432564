package actors

import (
	"bytes"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/wire"
)

// A connection that fails (here cut as a slow consumer, as a server's forced
// close cuts one) while its peer writes: every token its read pump read in
// full is delivered, before the error event; none is dropped because the
// chunk reached the actor after the failure. The tries loop, bounded in
// count and time, each failing the connection at another moment.

const (
	failTries  = 300
	failBudget = 20 * time.Second
)

// countingConn counts the tokens whose frames its Reads returned in full.
type countingConn struct {
	net.Conn
	mu     sync.Mutex
	dec    *wire.Decoder
	frames []wire.Frame
	tokens int
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	c.frames, _ = c.dec.AppendFrames(c.frames[:0], b[:n])
	c.tokens += len(c.frames)
	c.mu.Unlock()
	return n, err
}

func (c *countingConn) read() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tokens
}

func TestTokensReadBeforeAFailureAreDelivered(t *testing.T) {
	tryRepeatedly(t, failTries, failBudget, func(i int) { readRacingFailure(t, i) })
}

func readRacingFailure(t *testing.T, try int) {
	t.Helper()
	a, b := net.Pipe()
	dec, _ := wire.NewDecoder(wire.DefaultMaxTokenSize)
	conn := &countingConn{Conn: a, dec: dec}
	var delivered atomic.Int64
	var afterError atomic.Bool
	failed := make(chan struct{})
	closes := make(chan bool, 1)
	const maxQueue = 64 << 10
	c, err := NewConnection(conn, ConnectionOptions{
		Limits: Limits{HighWaterMark: maxQueue / 2, MaxQueue: maxQueue, WriteTimeout: time.Minute},
		OnToken: func([]byte, *Connection) {
			if afterError.Load() {
				t.Errorf("try %d: a token after the error event", try)
			}
			delivered.Add(1)
		},
		OnError: func(error) { afterError.Store(true); close(failed) },
		OnClose: func(had bool) { put(t, closes, had) },
	})
	if err != nil {
		t.Fatal(err)
	}
	peerDone := make(chan struct{})
	go func() { // the peer writes small tokens and reads nothing
		defer close(peerDone)
		chunk := bytes.Repeat([]byte("token\n"), 1+try%7)
		for {
			if _, err := b.Write(chunk); err != nil {
				return
			}
		}
	}()
	within(t, deadline, "tokens to arrive", func() bool { return delivered.Load() >= int64(try%20) })
	// The first token waits with the writer (the peer reads nothing); the
	// second would pass the hard cap: the connection fails.
	if !c.Send([]byte("first")) {
		t.Fatalf("try %d: the first Send was refused", try)
	}
	spin(time.Duration(try%11) * 5 * time.Microsecond)
	if c.Send(make([]byte, maxQueue)) {
		t.Fatalf("try %d: a Send past the hard cap was taken", try)
	}
	recv(t, failed, "the error")
	recv(t, closes, "the close")
	b.Close()
	recv(t, peerDone, "the peer")
	if read, got := conn.read(), delivered.Load(); int64(read) != got {
		t.Errorf("try %d: the read pump read %d tokens in full, %d were delivered", try, read, got)
	}
}
