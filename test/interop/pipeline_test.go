package interop

import (
	"encoding/json"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/actors"
)

// pipelineEvent is one JSON line of pipeline-client.js.
type pipelineEvent struct {
	Event    string `json:"event"`
	I        int    `json:"i"`
	Len      int    `json:"len"`
	Sha256   string `json:"sha256"`
	N        int    `json:"n"`
	Message  string `json:"message"`
	Code     string `json:"code"`
	HadError bool   `json:"hadError"`
}

// flowWatch samples a connection's flow control (Queued, ReadPaused) every
// millisecond until stopped.
type flowWatch struct {
	mu        sync.Mutex
	maxQueued int
	paused    bool
	stop      chan struct{}
	done      chan struct{}
}

func watchFlow(c *actors.Connection) *flowWatch {
	w := &flowWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			w.mu.Lock()
			w.maxQueued = max(w.maxQueued, c.Queued())
			w.paused = w.paused || c.ReadPaused()
			w.mu.Unlock()
			select {
			case <-tick.C:
			case <-w.stop:
				return
			}
		}
	}()
	return w
}

// end stops the sampling and returns the largest queue seen and whether
// reading was ever paused.
func (w *flowWatch) end() (int, bool) {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.maxQueued, w.paused
}

// TestPipeline_GoServer_NodeClient: the original TokenClient pipelines 200
// random tokens of 64 KiB through the Go echo server, writing whenever its
// socket drains and reading the echoes all the while: every echo comes back
// intact (same SHA-256) and in order, with no error on either side, and
// both sides close cleanly. (Before issue 11 the Go server cut it with
// queue_full at its high-water mark: write ECONNRESET, 3 runs out of 3.)
func TestPipeline_GoServer_NodeClient(t *testing.T) {
	const count, size = 200, 64 << 10
	certs := newCerts(t)
	gs := startGoServer(t, newSystem(t), certs.ServerOptions())
	p := startNode(t, "pipeline-client.js",
		"--host", "127.0.0.1", "--port", strconv.Itoa(gs.port),
		"--key", certs.path("client.key"), "--cert", certs.path("client.crt"), "--ca", certs.path("ca.crt"),
		"--count", strconv.Itoa(count), "--size", strconv.Itoa(size))
	next := func(what string) pipelineEvent {
		t.Helper()
		line := p.nextLine(eventTimeout, what)
		var ev pipelineEvent
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("pipeline-client.js: bad event line %q: %v", line, err)
		}
		return ev
	}
	if ev := next("connect"); ev.Event != "connect" {
		t.Fatalf("pipeline-client.js: want connect, got %+v\nstderr:\n%s", ev, p.stderr.String())
	}
	conn := recv(t, gs.conns, "the Go server's connection")
	watch := watchFlow(conn)
	start := time.Now()

	var sent, echoed []string
	waits := -1
	for done := false; !done; {
		ev := next("the pipeline's events")
		switch ev.Event {
		case "sent":
			check.Equal(t, len(sent), ev.I, "numbering of the sent tokens")
			sent = append(sent, ev.Sha256)
		case "token":
			check.Equal(t, size, ev.Len, "length of echo %d", ev.I)
			echoed = append(echoed, ev.Sha256)
		case "waits":
			waits = ev.N
		case "close":
			check.False(t, ev.HadError, "pipeline-client.js close event")
			done = true
		default: // error, sendRefused, remoteClose
			t.Fatalf("pipeline-client.js: unexpected event %+v after %d sent, %d echoed\nstderr:\n%s",
				ev, len(sent), len(echoed), p.stderr.String())
		}
	}
	elapsed := time.Since(start)
	maxQueued, paused := watch.end()
	t.Logf("node pipelined %d tokens of 64 KiB in %v, waiting %d times for 'drain'; the Go server queued up to %.1f MiB (read paused: %v)",
		count, elapsed.Round(time.Millisecond), waits, float64(maxQueued)/(1<<20), paused)
	check.Len(t, sent, count, "tokens sent")
	check.Len(t, echoed, count, "echoes received")
	for i := range sent {
		if sent[i] != echoed[i] {
			t.Fatalf("echo %d differs from token %d (SHA-256 %s, want %s)", i, i, echoed[i], sent[i])
		}
	}
	check.True(t, waits > 0, "the client never waited for 'drain': it did not pipeline")
	check.False(t, recv(t, gs.connCloses, "OnConnectionClose"), "hadError of the server's connection")
	none(t, gs.connErrs, "OnConnectionError")
	check.NoError(t, p.waitExit(eventTimeout), "pipeline-client.js exit")
}
