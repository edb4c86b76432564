//go:build linux

package cluster

import (
	"bytes"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/actors"
)

// A slow grain stops its connection from reading, through the credit
// messages across nodes: the front reads only a window ahead of what the
// grain has credited, so TCP pushes back and the client's own queue holds
// what it sent, instead of the front's memory.
func TestSlowGrainPushesBack(t *testing.T) {
	e := newEnv(t, 2)
	listen := "127.0.0.1:" + strconv.Itoa(freePorts(t, 1)[0])
	e.start("handler", "h1", "--delay", "2ms")
	f1 := e.start("front", "f1", "--listen", listen)
	f1.waitLine(t, "listening on", 30*time.Second)

	var replies atomic.Int64
	cl := e.connect(t, listen, actors.ClientOptions{
		Limits:  actors.Limits{MaxQueue: 64 << 20, HighWaterMark: 64 << 20, LowWaterMark: 1 << 20},
		OnToken: func([]byte, *actors.Connection) { replies.Add(1) },
	})
	// 32 MiB of tokens at once; the grain handles about 500 a second.
	const tokens = 32 << 10
	tok := bytes.Repeat([]byte("x"), 1023)
	batch := make([][]byte, 1024)
	for i := range batch {
		batch[i] = tok
	}
	for range tokens / len(batch) {
		if !cl.Connection().SendBatch(batch) {
			t.Fatal("SendBatch refused")
		}
	}
	// Within a deadline, the client's queue stops draining: most of the
	// 32 MiB is still on the client, not written, though the grain has
	// answered some tokens.
	deadline := time.Now().Add(10 * time.Second)
	var queued int
	for {
		queued = cl.Connection().Queued()
		if replies.Load() > 100 && queued > 16<<20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s: %d replies, %d bytes still queued on the client: no push back", replies.Load(), queued)
		}
		time.Sleep(50 * time.Millisecond) // polling, bounded by the deadline
	}
	t.Logf("%d replies so far; %d MiB still queued on the client: the front stopped reading", replies.Load(), queued>>20)
	// A clean close would wait for the slow grain: end the front at once.
	f1.kill(t)
}
