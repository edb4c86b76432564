package chaos

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tokenserver/tokenserver/actors"
)

// numbered returns token number id: id in its first 8 bytes, then filler
// with a newline and a backslash to escape.
func numbered(id uint64) []byte {
	const size = 8 + 256
	tok := make([]byte, 8, size+16)
	binary.BigEndian.PutUint64(tok, id)
	for len(tok) < size {
		tok = append(tok, "filler\n\\ "...)
	}
	return tok[:size]
}

// idOf returns the number of a token numbered made, and whether it is one.
func idOf(tok []byte) (uint64, bool) {
	if len(tok) < 8 {
		return 0, false
	}
	id := binary.BigEndian.Uint64(tok)
	return id, string(tok) == string(numbered(id))
}

// ledger is every token's fate in TestAccountingUnderRestarts.
type ledger struct {
	mu       sync.Mutex
	accepted map[uint64]bool     // Send returned true
	refused  map[uint64]bool     // Send returned false
	received map[uint64]int      // by the servers, how many times
	perConn  map[uint64][]uint64 // ids in order of arrival, per server connection
	arrival  []uint64            // ids in order of arrival, all servers
	dropped  map[uint64]error    // OnDropped, but buffer full
	full     map[uint64]bool     // OnDropped with ErrBufferFull
	damaged  int
}

func (l *ledger) receive(tok []byte, c *actors.Connection) {
	id, ok := idOf(tok)
	l.mu.Lock()
	defer l.mu.Unlock()
	if !ok {
		l.damaged++
		return
	}
	l.received[id]++
	l.perConn[c.ID()] = append(l.perConn[c.ID()], id)
	l.arrival = append(l.arrival, id)
}

func (l *ledger) drop(toks [][]byte, reason error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, tok := range toks {
		id, ok := idOf(tok)
		switch {
		case !ok:
			l.damaged++
		case errors.Is(reason, actors.ErrBufferFull):
			l.full[id] = true
		default:
			l.dropped[id] = reason
		}
	}
}

// settled reports whether every token Send took was received or reported.
func (l *ledger) settled() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id := range l.accepted {
		if l.received[id] == 0 && l.dropped[id] == nil {
			return false
		}
	}
	return true
}

func (l *ledger) receivedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.arrival)
}

// A client with reconnection sends numbered tokens without pause while its
// server is closed and listens again on the same port (Close, Connect(0)),
// or is shut down and replaced by a new server on the same port, four
// times; then the server closes for good and the client is closed with
// tokens in its reconnect buffer. At the end every token Send took was
// received by a server or
// reported by OnDropped (tokens = received + dropped, the maybe-sent ones
// counted apart: a token may be both received and reported maybe sent,
// never neither); none is received twice, none reported not sent is
// received, and each server connection receives its tokens in order. A
// token Send refused (the reconnect buffer was full) is reported by
// OnDropped with ErrBufferFull, and is never received. The restarts are
// clean (remoteClose, the client closes, the server reads to the end):
// a server that closes by force, or dies, loses what it had read and not
// delivered, and what was in its socket, which no sender can account for.
func TestAccountingUnderRestarts(t *testing.T) {
	const maxTokens = 200000 // bounds the sender; the rounds end it sooner
	c := certs(t)
	l := &ledger{accepted: map[uint64]bool{}, refused: map[uint64]bool{}, received: map[uint64]int{},
		perConn: map[uint64][]uint64{}, dropped: map[uint64]error{}, full: map[uint64]bool{}}
	record := func(o *actors.ServerOptions) { o.OnToken = l.receive }
	srv := echoServer(t, c, 0, record)
	p := port(srv)

	connects := make(chan struct{}, 64)
	cli, err := actors.NewClient(actors.ClientOptions{
		Host: "127.0.0.1", Port: p, TLS: c.ClientOptions(),
		Runtime:   actors.Runtime{System: actors.NewQuietSystem()},
		Reconnect: fastPolicy(),
		OnConnect: func() {
			select {
			case connects <- struct{}{}:
			default:
			}
		},
		OnDropped: l.drop,
	})
	require.NoError(t, err)
	t.Cleanup(func() { shutdown(t, cli.Shutdown) })
	wait(t, connects, "first connect")

	var stop atomic.Bool
	sent := make(chan int, 1)
	go func() {
		i := 0
		for ; i < maxTokens && !stop.Load(); i++ {
			ok := cli.Send(numbered(uint64(i)))
			l.mu.Lock()
			if ok {
				l.accepted[uint64(i)] = true
			} else {
				l.refused[uint64(i)] = true
			}
			l.mu.Unlock()
			if i%64 == 63 {
				time.Sleep(100 * time.Microsecond) // pacing of the load generator
			}
		}
		sent <- i
	}()

	progress := func(what string) {
		t.Helper()
		from := l.receivedCount()
		require.Eventually(t, func() bool { return l.receivedCount() >= from+500 }, deadline, time.Millisecond,
			"500 more tokens received %s", what)
	}
	for round := 0; round < 4; round++ {
		progress(fmt.Sprintf("before restart %d", round+1))
		if round%2 == 0 {
			require.True(t, srv.Close())
			require.Eventually(t, func() bool { return srv.Status() == actors.OFFLINE }, deadline, time.Millisecond)
			require.True(t, srv.Connect(0), "the server listens again on the same port")
		} else {
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			require.NoError(t, srv.Shutdown(ctx))
			cancel()
			srv = echoServer(t, c, p, record)
		}
		wait(t, connects, fmt.Sprintf("reconnect %d", round+1))
	}
	progress("after the last restart")
	// The end: the server goes away for good while the client sends, and
	// the client is closed with tokens in its reconnect buffer, which it
	// reports (ErrClientClosed).
	require.True(t, srv.Close())
	require.Eventually(t, func() bool { return cli.Status() != actors.ONLINE && cli.Buffered() > 0 }, deadline,
		time.Millisecond, "tokens wait in the reconnect buffer while the server is down")
	stop.Store(true)
	n := wait(t, sent, "the sender")
	require.True(t, cli.Close())
	require.Eventually(t, l.settled, deadline, 5*time.Millisecond, "every token Send took received or reported")

	l.mu.Lock()
	defer l.mu.Unlock()
	require.Zero(t, l.damaged, "damaged tokens")
	maybe, maybeReceived := 0, 0
	byReason := map[string]int{}
	for id, reason := range l.dropped {
		require.True(t, l.accepted[id], "token %d reported dropped (%v) but Send refused it", id, reason)
		byReason[actors.ErrorCode(reason)]++
		if errors.Is(reason, actors.ErrMaybeSent) {
			maybe++
			if l.received[id] > 0 {
				maybeReceived++
			}
			continue
		}
		require.Zero(t, l.received[id], "token %d received and reported %v", id, reason)
	}
	for id := range l.full {
		require.True(t, l.refused[id], "token %d reported buffer full but Send took it", id)
	}
	for id := range l.refused { // the client is never closed while it sends
		require.True(t, l.full[id], "Send refused token %d and OnDropped did not report it (buffer full)", id)
	}
	received := 0
	for id, k := range l.received {
		require.Equal(t, 1, k, "token %d received %d times", id, k)
		require.True(t, l.accepted[id], "token %d received but Send refused it", id)
		received++
	}
	require.Equal(t, len(l.accepted), received+len(l.dropped)-maybeReceived,
		"tokens Send took = received + dropped - (maybe sent and received)")
	for conn, ids := range l.perConn {
		for i := 1; i < len(ids); i++ {
			require.Less(t, ids[i-1], ids[i], "connection %d: token %d arrived after %d", conn, ids[i], ids[i-1])
		}
	}
	inversions := 0
	for i := 1; i < len(l.arrival); i++ {
		if l.arrival[i] < l.arrival[i-1] {
			inversions++
		}
	}
	t.Logf("Send called %d times: took %d, refused %d (%d reported buffer full); received %d on %d server connections (%d arrivals out of order across connections); dropped %d %v (maybe sent %d, of which received %d)",
		n, len(l.accepted), len(l.refused), len(l.full), received, len(l.perConn), inversions, len(l.dropped), byReason, maybe, maybeReceived)
	require.Positive(t, received, "tokens received")
}
