package actors

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tokenserver/tokenserver/wire"
)

// LendTokens: the callbacks borrow the tokens, and the read buffers they lie
// in are read into again once the owner is done with them.

// Lent tokens are whole and in order for the duration of the call, both
// ways, on both protocols, with reads small enough that buffers are reused
// all the time and frames straddle them. A buffer read into again before its
// callback returned would corrupt a token (or, under -race, be a race).
func TestLentTokensKeepOrderOverTLS(t *testing.T) {
	for _, proto := range []string{ProtocolToken1, ProtocolToken2} {
		t.Run(proto, func(t *testing.T) {
			atServer := newOrderChecker(t, "server", orderCount)
			atClient := newOrderChecker(t, "client", orderCount)
			srv := listeningServer(t, ServerOptions{
				Limits:     Limits{ReadBufferSize: 5000},
				LendTokens: true,
				OnTokens: func(toks [][]byte, c *Connection) {
					for _, tok := range toks {
						atServer.token(tok)
					}
					runtime.Gosched() // give the read pump a chance to run
					if !c.SendBatch(toks) {
						t.Errorf("the server's SendBatch refused %d tokens", len(toks))
					}
				},
				OnConnectionError: func(_ *Connection, err error) { t.Errorf("server connection: %v", err) },
			})
			cli := connectedClient(t, srv, ClientOptions{
				Protocols:  []string{proto},
				Limits:     Limits{ReadBufferSize: 4096},
				LendTokens: true,
				OnToken: func(tok []byte, _ *Connection) {
					runtime.Gosched()
					atClient.token(tok)
				},
				OnError: func(err error) { t.Errorf("client: %v", err) },
			})
			conn := cli.Connection()
			if got := conn.Protocol(); got != proto {
				t.Fatalf("negotiated %q, want %q", got, proto)
			}
			sendOrdered(t, orderCount, cli.Send, conn.SendBatch)
			recv(t, atServer.done, "every token at the server")
			recv(t, atClient.done, "every echo at the client")
		})
	}
}

// What lending saves: a server that keeps the tokens it is given needs a
// new read buffer for nearly every read, and a new buffer for every token
// that spans reads; one that lends them reads into the same few, and
// decodes spanning tokens into buffers it gets back. The bytes allocated per
// token, in this process (server and client), fall by more than a third
// (by 85 to 95% in a fresh process), for 1 KiB tokens (many in a read) and
// 64 KiB ones (each spanning reads), on both protocols. Not by half: once
// earlier tests have filled framepool's free lists (8 MiB in all), the
// buffers given back go to the sync.Pool behind them, which under the race
// detector drops a quarter of what it is given (60,057 bytes lent against
// 106,070 given, 64 KiB over token/1, in a -race -count=3 run). Without
// the reuse, lent is given or more.
//
// Each figure is the least of three runs, alternated: the count is the
// whole process's, and a run where the read pump read ahead of a busy
// consumer (a loaded machine, or another package's tests beside it)
// allocates fresh read buffers while the lent ones are still out (lent
// 965 and 1,077 bytes per 1 KiB token in single runs, against about 120).
func TestLentTokensReuseReadBuffers(t *testing.T) {
	for _, proto := range []string{ProtocolToken1, ProtocolToken2} {
		for _, size := range []int{1 << 10, 64 << 10} {
			t.Run(fmt.Sprintf("%s/%d", proto, size), func(t *testing.T) {
				count := max(3000*1024/size, 200)
				lentAllocs(t, proto, size, count, false) // the first server and client of a test allocate more
				kept, lent := math.Inf(1), math.Inf(1)
				for range 3 {
					kept = min(kept, lentAllocs(t, proto, size, count, false))
					lent = min(lent, lentAllocs(t, proto, size, count, true))
				}
				t.Logf("bytes allocated per %d-byte token: %.0f given, %.0f lent", size, kept, lent)
				if lent > kept*2/3 {
					t.Errorf("lending saved too little: %.0f bytes per token lent, %.0f given", lent, kept)
				}
			})
		}
	}
}

// lentAllocs sends count tokens of size bytes over proto to a server that
// lends them or not, and returns the bytes allocated per token meanwhile.
func lentAllocs(t *testing.T, proto string, size, count int, lend bool) float64 {
	// Token i is size bytes of one letter, 'a'+i%26: nothing to escape in
	// token/1 (what the sending side allocates does not depend on how many
	// bytes its frames escape), and a token decoded into a buffer another
	// token still used would show.
	letters := make([][]byte, 26)
	for i := range letters {
		letters[i] = bytes.Repeat([]byte{byte('a' + i)}, size)
	}
	done := make(chan struct{})
	got := 0
	srv := listeningServer(t, ServerOptions{
		LendTokens: lend,
		OnToken: func(tok []byte, _ *Connection) {
			if !bytes.Equal(tok, letters[got%26]) {
				t.Errorf("token %d (%d bytes) is not the one sent", got, len(tok))
			}
			if got++; got == count {
				close(done)
			}
		},
		OnConnectionError: func(_ *Connection, err error) { t.Errorf("server connection: %v", err) },
	})
	cli := connectedClient(t, srv, ClientOptions{
		Protocols: []string{proto},
		OnError:   func(err error) { t.Errorf("client: %v", err) },
	})
	toks := letters // a batch of every letter
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for sent := 0; sent < count; sent += len(toks) {
		if err := cli.Connection().WaitDrain(context.Background()); err != nil {
			t.Fatal(err)
		}
		if !cli.Connection().SendBatch(toks[:min(len(toks), count-sent)]) {
			t.Fatal("SendBatch refused")
		}
	}
	recv(t, done, "every token at the server")
	runtime.ReadMemStats(&after)
	return float64(after.TotalAlloc-before.TotalAlloc) / float64(count)
}

// A handler PID's messages outlive any call: their tokens cannot be lent.
func TestLendTokensWithHandlerIsInvalid(t *testing.T) {
	sys := NewQuietSystem()
	defer sys.Shutdown()
	pid := sys.Root.Spawn(HandlerProps(func() actor.Actor { return actor.ReceiveFunc(func(actor.Context) {}) }))
	_, err := NewServer(ServerOptions{Host: "127.0.0.1", TLS: testCerts(t).ServerOptions(),
		Handler: pid, Runtime: Runtime{System: sys}, LendTokens: true})
	if !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("NewServer: %v, want ErrInvalidOptions", err)
	}
	_, err = NewClient(ClientOptions{Host: "127.0.0.1", Port: 1, TLS: testCerts(t).ClientOptions(),
		Handler: pid, Runtime: Runtime{System: sys}, LendTokens: true})
	if !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("NewClient: %v, want ErrInvalidOptions", err)
	}
}

// The read side's bookkeeping of the pool buffers it gave the decoder: a
// delivered token that lies in one gets it back (for framepool at
// framesDone); a buffer no token holds (the decoder grew past it) is
// forgotten, but for the one the frame in progress may be using, the last.
func TestLentSpanBuffers(t *testing.T) {
	var r readSide
	r.spanBuffer(2048) // one the decoder grew past
	current := r.spanBuffer(4096)
	empty := []wire.Frame{{Kind: wire.KindToken, Token: []byte{}}, {Kind: wire.KindRemoteClose}}
	if got := r.lentSpan(empty, true); got != nil {
		t.Errorf("an empty token got a pool buffer back (%d bytes)", cap(got))
	}
	other := []wire.Frame{{Kind: wire.KindToken, Token: make([]byte, 100)}}
	if got := r.lentSpan(other, true); got != nil {
		t.Errorf("a token in no pool buffer got one back (%d bytes)", cap(got))
	}
	if len(r.spanBufs) != 1 || &r.spanBufs[0][:1][0] != &current[:1][0] {
		t.Fatalf("%d buffers kept while a frame is in progress, want the last one only", len(r.spanBufs))
	}
	mine := []wire.Frame{{Kind: wire.KindToken, Token: current[:100:100]}}
	if got := r.lentSpan(mine, false); got == nil || &got[:1][0] != &current[:1][0] || cap(got) != cap(current) {
		t.Error("the token decoded into a pool buffer did not give that buffer back, whole")
	}
	if len(r.spanBufs) != 0 {
		t.Errorf("%d buffers kept with no frame in progress", len(r.spanBufs))
	}
	r.spanBuffer(1024)
	if r.lentSpan(nil, false); len(r.spanBufs) != 0 {
		t.Errorf("%d buffers kept after a chunk that ended between frames", len(r.spanBufs))
	}
}

// Bad input on a server that lends: the connection concerned gets its
// error and closes, and another connection sending at the same time loses
// nothing (its tokens, whole and in order, and their echoes).
func TestLentTokensBadInputClosesOnlyItsConnection(t *testing.T) {
	atServer := newOrderChecker(t, "server", orderCount)
	atClient := newOrderChecker(t, "client", orderCount)
	badErr := make(chan error, 1)
	var badConn atomic.Pointer[Connection]
	srv := listeningServer(t, ServerOptions{
		Limits:     Limits{ReadBufferSize: 5000},
		LendTokens: true,
		OnTokens: func(toks [][]byte, c *Connection) {
			if c == badConn.Load() {
				return
			}
			for _, tok := range toks {
				atServer.token(tok)
			}
			c.SendBatch(toks)
		},
		OnConnection: func(c *Connection) {
			if c.RemoteAddr() != nil && badConn.Load() == nil && c.Protocol() == ProtocolToken1 {
				badConn.Store(c)
			}
		},
		OnConnectionError: func(c *Connection, err error) {
			if c == badConn.Load() {
				put(t, badErr, err)
				return
			}
			t.Errorf("the good connection failed: %v", err)
		},
	})
	// The bad client: raw TLS, token/1 (no ALPN), a few tokens then an
	// invalid escape.
	raw, err := tls.Dial("tcp", srv.Addr().String(), clientTLS(t))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Write([]byte("one\ntwo\n\\x\nthree\n")); err != nil {
		t.Fatal(err)
	}
	// The good client, token/2, lends too.
	cli := connectedClient(t, srv, ClientOptions{
		Limits:     Limits{ReadBufferSize: 4096},
		LendTokens: true,
		OnToken:    func(tok []byte, _ *Connection) { atClient.token(tok) },
		OnError:    func(err error) { t.Errorf("client: %v", err) },
	})
	sendOrdered(t, orderCount, cli.Send, cli.Connection().SendBatch)
	if err := recv(t, badErr, "the bad connection's error"); !errors.Is(err, wire.ErrInvalidEscape) {
		t.Errorf("the bad connection's error %v, want wire.ErrInvalidEscape", err)
	}
	_ = raw.SetReadDeadline(time.Now().Add(deadline))
	if _, err := io.ReadAll(raw); err != nil {
		t.Errorf("the bad connection did not end cleanly for its peer: %v", err)
	}
	recv(t, atServer.done, "every token of the good client at the server")
	recv(t, atClient.done, "every echo at the good client")
}
