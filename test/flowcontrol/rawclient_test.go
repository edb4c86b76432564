package flowcontrol

import (
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/wire"
)

// slowEcho runs one raw crypto/tls client against a child echo server (hwm
// 0: the default limits): it writes n numbered tokens of size bytes as fast
// as its socket takes them while it reads the echoes slowly (readSize bytes
// at most per read, a pause before each), checks that all come back intact
// and in order, and returns the server's report.
func slowEcho(t *testing.T, hwm, n, size, readSize int, pause time.Duration) childReport {
	certs := newCerts(t)
	child := startChildServer(t, certs, hwm)
	conn := dialRaw(t, certs, child.addr)

	writeErr := make(chan error, 1)
	wrote := make(chan time.Duration, 1)
	start := time.Now()
	go func() {
		var frame []byte
		for i := range n {
			frame = wire.AppendToken(frame[:0], makeToken(uint64(i), size))
			if _, err := conn.Write(frame); err != nil {
				writeErr <- err
				return
			}
		}
		wrote <- time.Since(start)
	}()

	next := uint64(0)
	_ = conn.SetReadDeadline(time.Now().Add(deadline))
	_, err := readTokens(conn, readSize, func() { time.Sleep(pause) }, func(tok []byte) bool {
		id, ok := tokenID(tok)
		if !ok || id != next {
			t.Fatalf("echo %d: got token %d (intact: %v, %d bytes)", next, id, ok, len(tok))
		}
		next++
		return next < uint64(n)
	})
	if err != nil {
		t.Fatalf("reading the echoes after %d of %d: %v", next, n, err)
	}
	if next != uint64(n) {
		t.Fatalf("%d echoes, want %d", next, n)
	}
	select {
	case err := <-writeErr:
		t.Fatalf("writing: %v", err)
	case d := <-wrote:
		t.Logf("the client wrote %d tokens of %d KiB in %v and read them back in %v",
			n, size>>10, d.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	}
	r := child.report()
	if len(r.Errors) > 0 || r.Dropped > 0 {
		t.Fatalf("server: errors %q, %d tokens dropped", r.Errors, r.Dropped)
	}
	if r.Tokens != n {
		t.Fatalf("server received %d tokens, want %d", r.Tokens, n)
	}
	t.Logf("server (child process, HighWaterMark %s): %v; max queued %s, read paused: %v, drain events %d",
		mib(uint64(r.HighWaterMark)), r.Heap, mib(uint64(r.MaxQueued)), r.Paused, r.Drains)
	return r
}

// A raw crypto/tls client writes 300 tokens of 64 KiB as fast as its socket
// takes them and reads the echoes slowly (16 KiB, then a pause of a
// millisecond or two): all come back intact, in order, with no error on either side, the
// server stops reading past its high-water mark instead of cutting the
// client, and its heap (measured alone, in a child process) stays bounded:
// the live heap under the high-water mark plus the read window plus 16 MiB,
// HeapInuse under twice that (GOGC=100 lets garbage reach the live heap's
// size before a collection). With a high-water mark of 1 MiB the traffic is
// many times the bound, and the live heap must stay within 4 MiB of the
// high-water mark plus the read window.
func TestSlowReaderRawClient(t *testing.T) {
	for _, tc := range []struct {
		name    string
		hwm     int
		n, size int
		slack   uint64
		pause   time.Duration // before each read of 16 KiB
	}{
		// At most 8 MB/s read back: the 19.7 MB of echoes outrun the
		// socket buffers (a few MiB) and the 8 MiB high-water mark.
		{"default limits", 0, 300, 64 << 10, 16 << 20, 2 * time.Millisecond},
		{"HighWaterMark 1 MiB", 1 << 20, 300, 64 << 10, 4 << 20, time.Millisecond},
		// Echoes of 512 KiB go out in pieces (actors/conn_pieces.go).
		{"tokens in pieces", 0, 40, 512 << 10, 16 << 20, 2 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			size := tc.size
			r := slowEcho(t, tc.hwm, tc.n, size, 16<<10, tc.pause)
			window := r.ReadWindow * r.ReadBufferSize
			if !r.Paused {
				t.Errorf("the server never stopped reading: the test did not push it past its high-water mark")
			}
			if r.MaxQueued > r.HighWaterMark+window+2*size {
				t.Errorf("the server queued up to %s for the slow reader, over HighWaterMark %s + read window %s",
					mib(uint64(r.MaxQueued)), mib(uint64(r.HighWaterMark)), mib(uint64(window)))
			}
			bound := uint64(r.HighWaterMark+window) + tc.slack
			if r.Heap.LiveGrowth() > bound {
				t.Errorf("the server's live heap grew by %s, over %s", mib(r.Heap.LiveGrowth()), mib(bound))
			}
			if r.Heap.Growth() > 2*bound {
				t.Errorf("the server's HeapInuse grew by %s, over %s", mib(r.Heap.Growth()), mib(2*bound))
			}
		})
	}
}
