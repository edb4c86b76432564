package delivery

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
	"github.com/tokenserver/tokenserver/wire"
)

// A token/2 peer that reads everything and acknowledges nothing holds what
// it was sent in the server's queue (Queued counts it, against MaxQueue),
// and nothing much beyond it: small tokens sent in bursts are gathered in
// 64 KiB buffers to be written, and a batch kept for its acknowledgement
// must not keep such a buffer for a few hundred bytes. 200 bursts of 100
// 8-byte tokens queue 200 KB; the server's heap may not grow by more than
// 4 MB (it grew by 21 MB, a gathering buffer a burst, before).
func TestUnacknowledgedBatchesHoldTheirBytesOnly(t *testing.T) {
	const bursts, perBurst = 200, 100
	certs, err := tlsio.GenerateDevCerts()
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan *actors.Connection, 1)
	srv, err := actors.NewServer(actors.ServerOptions{
		Host: "127.0.0.1", TLS: certs.ServerOptions(),
		OnConnection: func(c *actors.Connection) { conns <- c },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, "server", srv.Shutdown)
	within(t, "the server listening", func() bool { return srv.Addr() != nil })
	c := dialToken2(t, srv.Addr().String(), certs.ClientCert, certs.ClientKey)
	defer c.Close()
	greet(t, c, wire.Hello{Session: wire.SessionID{4}, First: 1})
	var conn *actors.Connection
	select {
	case conn = <-conns:
	case <-time.After(deadline):
		t.Fatal("no connection event")
	}
	reading := make(chan int, 1)
	var read atomic.Int64
	go func() { // reads every token, acknowledges none
		d, _ := wire.NewToken2Decoder(1 << 20)
		buf := make([]byte, 16<<10)
		n := 0
		for n < bursts*perBurst {
			k, err := c.Read(buf)
			if err != nil {
				break
			}
			frames, _ := d.AppendFrames(nil, buf[:k])
			for _, f := range frames {
				if f.Kind == wire.KindToken {
					n++
					read.Add(1)
				}
			}
		}
		reading <- n
	}()
	before := heapInUse()
	tok := []byte("12345678")
	for i := range bursts {
		for range perBurst {
			if !conn.Send(tok) {
				t.Fatal("Send refused")
			}
		}
		// The next burst goes in batches of its own.
		within(t, "the burst read", func() bool { return read.Load() >= int64((i+1)*perBurst) })
	}
	select {
	case n := <-reading:
		if n != bursts*perBurst {
			t.Fatalf("the peer read %d tokens, want %d", n, bursts*perBurst)
		}
	case <-time.After(deadline):
		t.Fatal("the peer did not read every token")
	}
	after := heapInUse()
	grew := int64(after) - int64(before)
	t.Logf("%d tokens unacknowledged: %d bytes queued, heap grew %d bytes", bursts*perBurst, conn.Queued(), grew)
	if conn.Queued() < bursts*perBurst*len(tok) {
		t.Errorf("Queued %d, want at least the %d bytes of the unacknowledged tokens", conn.Queued(), bursts*perBurst*len(tok))
	}
	if grew > 4<<20 {
		t.Errorf("the heap grew by %d bytes for %d bytes queued", grew, conn.Queued())
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}
