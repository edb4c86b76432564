package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/tokenserver/tokenserver/actors"
)

// maxExecBacklog is how many tokens of one connection may wait for --exec;
// past it a token is dropped (logged, no reply) rather than block the server
// actor or grow without bound.
const maxExecBacklog = 1024

// execHandler runs serve --exec: for each token, "sh -c CMD" with the token on
// stdin, and its stdout as the reply. OnToken runs in the server actor, so it
// only queues the token; the commands of one connection run one at a time, in
// order, in a goroutine that lives while that connection has work, and the
// reply goes out through Connection.Send, which is safe from any goroutine.
type execHandler struct {
	command   string
	timeout   time.Duration
	maxOutput int
	log       *slog.Logger

	ctx    context.Context // cancelled by stop: kills running commands
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	queues map[*actors.Connection]*execQueue
}

type execQueue struct {
	tokens  [][]byte
	running bool
}

func newExecHandler(command string, timeout time.Duration, maxOutput int, log *slog.Logger) *execHandler {
	ctx, cancel := context.WithCancel(context.Background())
	return &execHandler{
		command: command, timeout: timeout, maxOutput: maxOutput, log: log,
		ctx: ctx, cancel: cancel, queues: map[*actors.Connection]*execQueue{},
	}
}

// onToken is the server's OnToken: it never blocks.
func (h *execHandler) onToken(token []byte, c *actors.Connection) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ctx.Err() != nil {
		return
	}
	q := h.queues[c]
	if q == nil {
		q = &execQueue{}
		h.queues[c] = q
	}
	if len(q.tokens) >= maxExecBacklog {
		h.log.Error("exec backlog full: token dropped, no reply", "conn", c.ID(), "backlog", len(q.tokens))
		return
	}
	q.tokens = append(q.tokens, token)
	if !q.running {
		q.running = true
		h.wg.Add(1)
		go h.drain(c, q)
	}
}

// drain runs the queued tokens of c in order until the queue is empty.
func (h *execHandler) drain(c *actors.Connection, q *execQueue) {
	defer h.wg.Done()
	for {
		h.mu.Lock()
		if len(q.tokens) == 0 || h.ctx.Err() != nil {
			q.running = false
			h.mu.Unlock()
			return
		}
		token := q.tokens[0]
		q.tokens[0] = nil
		q.tokens = q.tokens[1:]
		h.mu.Unlock()

		if c.IsDead() {
			continue // nobody to reply to
		}
		start := time.Now()
		out, err := h.runCommand(token)
		if err != nil {
			h.log.Error("exec failed: no reply for this token", "conn", c.ID(), "tokenBytes", len(token), "err", err)
			continue
		}
		if !c.Send(out) {
			h.log.Warn("exec reply dropped: connection closed or its outbound queue is full", "conn", c.ID())
			continue
		}
		h.log.Debug("exec done", "conn", c.ID(), "took", time.Since(start))
	}
}

// forget drops the backlog of a closed connection.
func (h *execHandler) forget(c *actors.Connection) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if q := h.queues[c]; q != nil {
		q.tokens = nil
		delete(h.queues, c)
	}
}

// stop kills running commands and waits up to d for the workers to exit.
func (h *execHandler) stop(d time.Duration) {
	h.cancel()
	done := make(chan struct{})
	go func() {
		h.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d):
		h.log.Warn("exec workers still running after shutdown")
	}
}

// runCommand runs the command once with token on stdin.
func (h *execHandler) runCommand(token []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(h.ctx, h.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", h.command)
	cmd.Stdin = bytes.NewReader(token)
	stdout := &cappedBuffer{max: h.maxOutput}
	stderr := &cappedBuffer{max: 1024}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = time.Second // a grandchild holding stdout open cannot hang us
	killProcessGroup(cmd)
	err := cmd.Run()
	switch {
	case ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && h.ctx.Err() == nil:
		return nil, fmt.Errorf("timed out after %v%s", h.timeout, stderr.suffix())
	case err != nil:
		return nil, fmt.Errorf("%w%s", err, stderr.suffix())
	case stdout.over:
		return nil, fmt.Errorf("output larger than %d bytes (--max-token-size)", h.maxOutput)
	}
	if stderr.buf.Len() > 0 {
		h.log.Warn("exec stderr", "text", strings.TrimSpace(stderr.buf.String()))
	}
	return stdout.buf.Bytes(), nil
}

// cappedBuffer keeps the first max bytes written to it and notes whether
// more came; it never fails a write, so the command runs to its end.
type cappedBuffer struct {
	buf  bytes.Buffer
	max  int
	over bool
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	room := b.max - b.buf.Len()
	if len(p) > room {
		b.over = true
		if room > 0 {
			b.buf.Write(p[:room])
		}
		return len(p), nil
	}
	b.buf.Write(p)
	return len(p), nil
}

// suffix is ": stderr: ..." for an error message, or "".
func (b *cappedBuffer) suffix() string {
	s := strings.TrimSpace(b.buf.String())
	if s == "" {
		return ""
	}
	return ": stderr: " + s
}
