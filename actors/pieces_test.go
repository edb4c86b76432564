package actors

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"

	"github.com/tokenserver/tokenserver/wire"
)

// pieceSize is the size of token n in the tests of tokens sent in pieces:
// every third one is large, some just at pieceFrom, some several pieces
// and a part long; the rest are small.
func pieceSize(n uint64) int {
	if n%3 == 1 {
		return pieceFrom + int(n%5)*(piecePart+1001)
	}
	return orderSize(n)
}

// A token sent in pieces is never encoded whole: while the peer reads
// nothing, the queue holds the token's bytes and the escapes of two pieces
// (the one the pump writes and the next), not those of the whole frame.
// Once the peer reads, the frame comes out whole and intact, and the queue
// empties.
func TestPiecesKeepTheFrameOutOfMemory(t *testing.T) {
	a, b := net.Pipe()
	closes := make(chan bool, 1)
	c, err := NewConnection(a, ConnectionOptions{OnClose: func(had bool) { put(t, closes, had) }})
	if err != nil {
		t.Fatal(err)
	}
	token := bytes.Repeat([]byte{'\n'}, 1<<20) // every byte escaped: the frame is twice the token
	if !c.Send(token) {
		t.Fatal("Send refused a token on an empty queue")
	}
	first := make([]byte, 2)
	if _, err := io.ReadFull(b, first); err != nil || string(first) != "\\n" {
		t.Fatalf("the peer read %q, %v; want the first escape", first, err)
	}
	want := int64(len(token) + 1 + 2*piecePart)
	within(t, deadline, "the queue to hold the token and two pieces' escapes", func() bool {
		return int64(c.Queued()) == want
	})
	dec, _ := wire.NewDecoder(wire.DefaultMaxTokenSize)
	frames, err := dec.AppendFrames(nil, first)
	if err != nil {
		t.Fatal(err)
	}
	rest := make([]byte, 2*len(token)+1-len(first))
	if _, err := io.ReadFull(b, rest); err != nil {
		t.Fatal(err)
	}
	frames, err = dec.AppendFrames(frames, rest)
	if err != nil || len(frames) != 1 || !bytes.Equal(frames[0].Token, token) {
		t.Fatalf("the peer decoded %d frames (%v), not the token", len(frames), err)
	}
	within(t, deadline, "the queue to empty", func() bool { return c.Queued() == 0 })
	c.Close()
	_, _ = io.Copy(io.Discard, b)
	if had := recv(t, closes, "the close"); had {
		t.Error("the connection closed with an error")
	}
}

// A frame's pieces stay together: tokens sent in pieces and small ones, from
// four goroutines at once (Send, and SendToken messages from one of them),
// reach a server over TLS intact, each goroutine's in its order.
func TestPiecesStayTogether(t *testing.T) {
	const senders, each = 4, 24
	var mu sync.Mutex
	got := make(map[byte][]uint64)
	var bad error
	done := make(chan struct{})
	total := 0
	srv := listeningServer(t, ServerOptions{
		Protocols: []string{wire.ProtocolToken1},
		OnToken: func(tok []byte, _ *Connection) {
			mu.Lock()
			defer mu.Unlock()
			n, err := checkNumbered(tok[1:], pieceSize(uint64(len(got[tok[0]]))))
			if err != nil && bad == nil {
				bad = err
			}
			got[tok[0]] = append(got[tok[0]], n)
			if total++; total == senders*each {
				close(done)
			}
		},
	})
	cli := connectedClient(t, srv, ClientOptions{Protocols: []string{wire.ProtocolToken1}})
	conn := cli.Connection()
	var wg sync.WaitGroup
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				tok := append([]byte{byte(g)}, numbered(uint64(i), pieceSize(uint64(i)))...)
				if g == 0 {
					conn.root.Send(conn.PID(), SendToken{Data: tok})
				} else if !conn.Send(tok) {
					t.Errorf("Send refused token %d of sender %d", i, g)
					return
				}
			}
		}()
	}
	wg.Wait()
	recv(t, done, "every token")
	mu.Lock()
	defer mu.Unlock()
	if bad != nil {
		t.Fatalf("a token came corrupt: %v", bad)
	}
	for g := range senders {
		for i, n := range got[byte(g)] {
			if n != uint64(i) {
				t.Fatalf("sender %d: token %d came in place %d", g, n, i)
			}
		}
	}
}

// When the connection fails, a token sent in pieces is handed back whole:
// maybe sent once a piece of it went to the writer, not sent before, and
// what was sent after it is not sent, in order. Over net.Pipe a write
// returns once read, so the accounting is exact.
func TestPiecesAccountingPeerClosesMidway(t *testing.T) {
	for _, limit := range []int{1, 100 << 10, pieceFrom + 5000, 700 << 10, 3 << 20} {
		t.Run(strconv.Itoa(limit), func(t *testing.T) {
			a, b := net.Pipe()
			l := ledger{sizeOf: pieceSize}
			c, closes := l.connection(t, a)
			peerDone := make(chan struct{})
			go func() { defer close(peerDone); readThenClose(b, limit, &l) }()
			accepted := 0
			for ; accepted < 30 && c.Send(numbered(uint64(accepted), pieceSize(uint64(accepted)))); accepted++ {
			}
			if accepted < 30 && !c.IsDead() {
				t.Errorf("Send refused token %d on a live connection", accepted)
			}
			recv(t, peerDone, "the peer")
			recv(t, closes, "the close")
			l.check(t, accepted, true)
			if q := c.shared.queued.Load(); q != 0 {
				t.Errorf("the queue counts %d bytes after the end", q)
			}
			t.Logf("Send took %d; the peer read %d; %d reported dropped", accepted, len(l.received), len(l.dropped))
		})
	}
}

// Which of the two a token sent in pieces is, once the connection fails:
// the peer reads nothing, then the connection breaks. A token in pieces
// that waited behind another is not sent; one whose first piece was with
// the writer is maybe sent; those sent after it are not sent.
func TestPiecesDroppedWhole(t *testing.T) {
	big := func(n uint64) []byte { return numbered(n, pieceFrom+3*piecePart+7) }
	small := func(n uint64) []byte { return numbered(n, 100) }
	for _, tc := range []struct {
		name  string
		send  [][]byte
		maybe int // the first tokens are maybe sent, the rest not sent
	}{
		{"behind a small token", [][]byte{small(0), big(1), small(2)}, 1},
		{"first", [][]byte{big(0), small(1), big(2)}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := net.Pipe()
			l := ledger{sizeOf: func(n uint64) int { return len(tc.send[n]) }}
			c, closes := l.connection(t, a)
			for i, tok := range tc.send {
				if !c.Send(tok) {
					t.Fatalf("Send refused token %d", i)
				}
			}
			one := make([]byte, 1)
			if _, err := b.Read(one); err != nil { // the first frame is with the writer
				t.Fatal(err)
			}
			within(t, deadline, "the actor to take every token", func() bool { return c.shared.sends.Load() == nil })
			b.Close()
			if had := recv(t, closes, "the close"); !had {
				t.Error("the broken connection closed without an error")
			}
			l.mu.Lock()
			defer l.mu.Unlock()
			if len(l.dropped) != len(tc.send) {
				t.Fatalf("%d tokens reported dropped (%v), want %d", len(l.dropped), l.dropped, len(tc.send))
			}
			for i, n := range l.dropped {
				want := ErrNotSent
				if i < tc.maybe {
					want = ErrMaybeSent
				}
				if n != uint64(i) || !errors.Is(l.reasons[i], want) {
					t.Errorf("dropped token %d in place %d with %v, want token %d with %v", n, i, l.reasons[i], i, want)
				}
			}
			if l.badToken != nil {
				t.Errorf("a dropped token came back changed: %v", l.badToken)
			}
			if q := c.shared.queued.Load(); q != 0 { // Queued would hide a negative count
				t.Errorf("the queue counts %d bytes after the end", q)
			}
		})
	}
}

// The write that holds a token's last piece fails: if it wrote the piece in
// full, the token was sent (neither maybe sent nor unsent); if not, the
// whole token is maybe sent. Either way what waited for it is unsent, and
// the queue count is empty.
func TestFailedWriteOfTheLastPiece(t *testing.T) {
	token := bytes.Repeat([]byte("a\n"), 10)
	last := wire.AppendTokenPiece(nil, token[10:], true)
	for _, written := range []int{len(last), len(last) - 1} {
		s := &connShared{}
		w := newWriteSide(Limits{HighWaterMark: 1 << 20, LowWaterMark: 1 << 19})
		w.big = &pieced{token: token, done: len(token), begun: true, flight: true, flightLast: true}
		w.held = []*sendBatch{{frames: []byte("h\n"), tokens: 1}}
		w.writing, w.inFlight, w.inFlightSize = true, [][]byte{last}, len(last)
		s.queued.Add(int64(len(last) + 2))
		w.failInFlight(s, wire.Token1, nil, written)
		wantMaybe := ""
		if written < len(last) {
			wantMaybe = string(wire.AppendToken(nil, token))
		}
		if string(w.maybeSent) != wantMaybe || string(w.unsent) != "h\n" || w.big != nil || w.held != nil || s.queued.Load() != 0 {
			t.Errorf("written %d of %d: maybe sent %q, unsent %q, big %v, held %d, queued %d; want maybe sent %q, unsent %q, nothing left",
				written, len(last), w.maybeSent, w.unsent, w.big != nil, len(w.held), s.queued.Load(), wantMaybe, "h\n")
		}
	}
}

// Tokens of pieceFrom bytes and more go in pieces, on token/1 only.
func TestWhichTokensGoInPieces(t *testing.T) {
	for _, tc := range []struct {
		codec wire.Codec
		n     int
		want  bool
	}{{wire.Token1, pieceFrom, true}, {wire.Token1, pieceFrom - 1, false}, {wire.Token2, pieceFrom, false}} {
		if got := sendsInPieces(tc.codec, tc.n); got != tc.want {
			t.Errorf("%s, %d bytes: in pieces %v, want %v", tc.codec.Protocol(), tc.n, got, tc.want)
		}
	}
}
