package main

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer written by the progress goroutine and read
// by the test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// drawProgress runs a progress with total tokens, sets the count done to
// half, waits until want shows, then ends it and returns all it wrote.
func drawProgress(t *testing.T, total int64, want ...string) string {
	t.Helper()
	var out lockedBuffer
	p := &progress{w: &out, total: total, every: time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	var done atomic.Int64
	done.Store(500)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		p.run(ctx, time.Now().Add(-2*time.Second), done.Load)
	}()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for shown := false; !shown; {
		select {
		case <-tick.C:
		case <-deadline:
			cancel()
			<-finished
			t.Fatalf("progress never showed %q:\n%q", want, out.String())
		}
		shown = true
		for _, w := range want {
			shown = shown && strings.Contains(out.String(), w)
		}
	}
	cancel()
	<-finished
	return out.String()
}

// With --count: elapsed time, tokens/s so far, a bar and the count; erased at
// the end.
func TestProgressBarWithCount(t *testing.T) {
	out := drawProgress(t, 1000, "2.0s", "tokens/s", " 50% ", "|", "(500/1000)")
	if !strings.HasSuffix(out, "\x1b[2K\r") {
		t.Errorf("the line is not erased at the end: %q", out)
	}
}

// With --duration only: no bar (the end is not a count), the count and the
// rate.
func TestProgressWithoutCount(t *testing.T) {
	out := drawProgress(t, 0, "2.0s", "tokens/s", "(500")
	if strings.Contains(out, "%") {
		t.Errorf("a percentage without a count: %q", out)
	}
	if !strings.HasSuffix(out, "\x1b[2K\r") {
		t.Errorf("the line is not erased at the end: %q", out)
	}
}

func TestProgressLine(t *testing.T) {
	if got, want := progressLine(2*time.Second, 1000), "   2.0s        500 tokens/s"; got != want {
		t.Errorf("progressLine = %q, want %q", got, want)
	}
	if got := progressLine(0, 0); !strings.Contains(got, " 0 tokens/s") {
		t.Errorf("progressLine(0, 0) = %q", got)
	}
}

// Progress only on a terminal (stdout and stderr both) and not with --json.
func TestShowProgress(t *testing.T) {
	for _, c := range []struct {
		stdout, stderr, json, want bool
	}{
		{true, true, false, true},
		{true, true, true, false},
		{false, true, false, false},
		{true, false, false, false},
		{false, false, false, false},
	} {
		e := &env{stdoutIsTerminal: c.stdout, stderrIsTerminal: c.stderr}
		if got := showProgress(e, c.json); got != c.want {
			t.Errorf("stdout terminal %v, stderr terminal %v, json %v: %v, want %v", c.stdout, c.stderr, c.json, got, c.want)
		}
	}
}
