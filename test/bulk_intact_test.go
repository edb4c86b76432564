package test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
	"github.com/tokenserver/tokenserver/wire"
)

// TestBulkEchoIntact: pipelined tokens of 1 KiB, 64 KiB and 1 MiB, each
// with bytes of its own, echoed with OnTokens and SendBatch over token/1
// and token/2, all come back byte for byte and in order. On these loads the
// server reads into recycled read buffers (a chunk that only carried part
// of a large token goes back to the read pump) and encodes into pooled
// frame buffers (given back once written): a buffer handed out again while
// a token or a frame in it is still to be delivered or written shows here
// as a reply with another token's bytes.
func TestBulkEchoIntact(t *testing.T) {
	for _, proto := range []string{wire.ProtocolToken1, wire.ProtocolToken2} {
		for _, tc := range []struct{ size, n int }{{1 << 10, 3000}, {64 << 10, 200}, {1 << 20, 12}} {
			t.Run(fmt.Sprintf("%s/%s", proto, byteSize(tc.size)), func(t *testing.T) {
				bulkEchoIntact(t, proto, tc.size, tc.n)
			})
		}
	}
}

// bulkEchoIntact writes n numbered tokens of size bytes, pipelined (up to
// loadWindow bytes of them outstanding), and checks every reply while it
// writes.
func bulkEchoIntact(t *testing.T, proto string, size, n int) {
	// The handler checks what it gets too: a read buffer read into again
	// before the handler is done shows there, a frame buffer in the replies.
	// (t.Error, not t.Fatal: this runs on an actor's goroutine.)
	taken, bad := 0, false
	addr, cfg, _ := loadServer(t, actors.ServerOptions{
		OnTokens: func(toks [][]byte, c *actors.Connection) {
			for _, tok := range toks {
				if id, ok := numberedTokenID(tok, size); (!ok || id != taken) && !bad {
					bad = true // the first one says it
					t.Errorf("the handler's token %d: %d bytes, not token %d byte for byte (its number says %d, its bytes match it: %v)",
						taken, len(tok), taken, id, ok)
				}
				taken++
			}
			if !c.SendBatch(toks) {
				t.Errorf("SendBatch refused %d tokens", len(toks))
			}
		},
	})
	cfg.NextProtos = []string{proto}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := tlsio.Dial(ctx, addr, cfg, tlsio.DialConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if got := c.ConnectionState().NegotiatedProtocol; got != proto && (proto != wire.ProtocolToken1 || got != "") {
		t.Fatalf("negotiated %q, want %q", got, proto)
	}
	token2 := proto == wire.ProtocolToken2
	if token2 {
		openToken2(t, c)
	}
	codec := wire.CodecFor(proto)
	// At most loadWindow bytes of tokens outstanding, as the bench's load
	// generator: the server's queue stays under its high-water mark, so it
	// never stops reading, and a writer blocked on a full socket never
	// holds up the reader's ACKs behind it (a tls.Conn writes one at a time).
	credit := make(chan struct{}, max(1, loadWindow/size))
	for range cap(credit) {
		credit <- struct{}{}
	}
	stop := make(chan struct{}) // the test is over: the writer waits no more
	defer close(stop)
	werr := make(chan error, 1)
	go func() {
		// Frames gathered up to 64 KiB a write, so that the server reads
		// full TLS records, as a pipelining client makes it.
		var out []byte
		for i := range n {
			select {
			case <-credit:
			default:
				if len(out) > 0 { // what is gathered goes before the wait
					if _, err := c.Write(out); err != nil {
						werr <- err
						return
					}
					out = out[:0]
				}
				select {
				case <-credit:
				case <-stop:
					werr <- errors.New("stopped")
					return
				}
			}
			out = codec.AppendToken(out, numberedToken(i, size))
			if len(out) < 64<<10 && i < n-1 {
				continue
			}
			if _, err := c.Write(out); err != nil {
				werr <- err
				return
			}
			out = out[:0]
		}
		werr <- nil
	}()
	dec, err := codec.NewDecoder(size)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	var frames []wire.Frame
	_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
	for next := 0; next < n; {
		k, rerr := c.Read(buf)
		frames, err = dec.AppendFrames(frames[:0], buf[:k])
		if err != nil {
			t.Fatalf("after %d replies: %v", next, err)
		}
		before := next
		for _, f := range frames {
			if f.Kind != wire.KindToken {
				continue
			}
			if id, ok := numberedTokenID(f.Token, size); !ok || id != next {
				t.Fatalf("reply %d: %d bytes, not token %d byte for byte (its number says %d, its bytes match it: %v)",
					next, len(f.Token), next, id, ok)
			}
			next++
			credit <- struct{}{}
		}
		if token2 && next > before {
			// Acknowledged as they come, as a client does.
			if _, err := c.Write(wire.AppendAck(nil, uint64(next))); err != nil {
				t.Fatal(err)
			}
		}
		if rerr != nil && next < n {
			t.Fatalf("after %d replies of %d: %v", next, n, rerr)
		}
	}
	select {
	case err := <-werr:
		if err != nil {
			t.Fatal(err)
		}
	case <-timeout():
		t.Fatal("the writer did not finish")
	}
}

// numberedToken is token number id of size bytes (at least 8): id in its
// first 8 bytes, then bytes of a generator seeded by id, among them
// newlines and backslashes for token/1 to escape.
func numberedToken(id, size int) []byte {
	tok := make([]byte, size)
	binary.BigEndian.PutUint64(tok, uint64(id))
	r := mrand.New(mrand.NewPCG(uint64(id), 27))
	var w [8]byte
	for i := 8; i < size; i += 8 {
		binary.LittleEndian.PutUint64(w[:], r.Uint64())
		copy(tok[i:], w[:])
	}
	return tok
}

// numberedTokenID returns the number in tok and whether tok is exactly that
// token, of size bytes.
func numberedTokenID(tok []byte, size int) (int, bool) {
	if len(tok) != size || size < 8 {
		return -1, false
	}
	id := int(binary.BigEndian.Uint64(tok))
	return id, string(tok) == string(numberedToken(id, size))
}
