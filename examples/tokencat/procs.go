package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// How long compare waits for its child processes.
const (
	// childStartTimeout bounds the wait for a server's first line.
	childStartTimeout = 30 * time.Second
	// childStopTimeout bounds the wait for a server to exit after SIGTERM
	// (serve waits up to its close timeout for clients, then shuts down);
	// past it the process is killed.
	childStopTimeout = 15 * time.Second
)

// serverProc is a server that compare runs in its own process (tokencat
// serve, tokencat baseline or the Node echo server): started, asked for its
// address by its first line on stdout, stopped with SIGTERM.
type serverProc struct {
	name   string // for messages: "tokenserver", "plain TLS", "Node"
	cmd    *exec.Cmd
	addr   string
	stdin  io.WriteCloser // open while it runs (the Node echo server ends at EOF)
	stderr *tailBuffer
	done   chan struct{} // closed when the process has exited
	err    error         // Wait's result, after done

	stopOnce sync.Once
	stopErr  error
}

// startServerProc starts cmd, a server named name, and waits for its first
// line on stdout, which parse turns into the server's HOST:PORT. The caller
// must stop it.
func startServerProc(name string, cmd *exec.Cmd, parse func(line string) (string, bool)) (*serverProc, error) {
	p := &serverProc{name: name, cmd: cmd, stderr: newTailBuffer(16 << 10), done: make(chan struct{})}
	cmd.Stderr = p.stderr
	cmd.WaitDelay = time.Second
	dieWithParent(cmd)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	lines := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		line, _ := r.ReadString('\n')
		lines <- line
		_, _ = io.Copy(io.Discard, r) // nothing more is needed; drain anyway
		p.err = cmd.Wait()
		close(p.done)
	}()
	timer := time.NewTimer(childStartTimeout)
	defer timer.Stop()
	select {
	case line := <-lines:
		if addr, ok := parse(strings.TrimSuffix(line, "\n")); ok {
			p.addr = addr
			return p, nil
		}
		err = fmt.Errorf("%s: first line %q is not the listening address", name, line)
	case <-timer.C:
		err = fmt.Errorf("%s: no first line within %v", name, childStartTimeout)
	}
	return nil, errors.Join(err, p.stop(), p.stderrError())
}

// pid is the process id, for messages.
func (p *serverProc) pid() int { return p.cmd.Process.Pid }

// stop asks the server to exit (SIGTERM, and the end of its stdin), kills it
// when it has not exited after childStopTimeout, and waits for it. It returns
// an error when the server exited other than with status 0. It can be
// called more than once.
func (p *serverProc) stop() error {
	p.stopOnce.Do(func() { p.stopErr = p.terminate() })
	return p.stopErr
}

func (p *serverProc) terminate() error {
	select {
	case <-p.done:
		return p.exitError("exited before it was stopped")
	default:
	}
	_ = p.stdin.Close()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		_ = p.cmd.Process.Kill() // where SIGTERM cannot be sent
	}
	timer := time.NewTimer(childStopTimeout)
	defer timer.Stop()
	select {
	case <-p.done:
		return p.exitError("")
	case <-timer.C:
		_ = p.cmd.Process.Kill()
		<-p.done
		return errors.Join(fmt.Errorf("%s (pid %d) did not exit within %v of SIGTERM: killed", p.name, p.pid(), childStopTimeout), p.stderrError())
	}
}

// exitError describes an exit status other than 0, after done.
func (p *serverProc) exitError(why string) error {
	if p.err == nil && why == "" {
		return nil
	}
	msg := fmt.Sprintf("%s (pid %d)", p.name, p.pid())
	if why != "" {
		msg += " " + why
	}
	if p.err != nil {
		msg += ": " + p.err.Error()
	}
	return errors.Join(errors.New(msg), p.stderrError())
}

// stderrError is the last lines the server wrote on stderr, as an error, or
// nil when it wrote nothing.
func (p *serverProc) stderrError() error {
	s := strings.TrimSpace(p.stderr.String())
	if s == "" {
		return nil
	}
	return fmt.Errorf("%s stderr (the end):\n%s", p.name, indent(s))
}

// indent indents every line of s by four spaces.
func indent(s string) string {
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// runChild runs cmd to its end, bounded by ctx, and returns its stdout; an
// exit status other than 0 is an error that carries the end of its stderr.
func runChild(ctx context.Context, cmd *exec.Cmd) ([]byte, error) {
	var stdout strings.Builder
	stderr := newTailBuffer(16 << 10)
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	cmd.WaitDelay = time.Second
	dieWithParent(cmd)
	err := cmd.Run()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err != nil {
		if s := strings.TrimSpace(stderr.String()); s != "" {
			err = fmt.Errorf("%w:\n%s", err, indent(s))
		}
		return nil, err
	}
	return []byte(stdout.String()), nil
}

// tailBuffer keeps the last bytes written to it (at least keep), safe for
// concurrent use: the end of a child's stderr, for error messages.
type tailBuffer struct {
	mu   sync.Mutex
	keep int
	b    []byte
}

func newTailBuffer(keep int) *tailBuffer { return &tailBuffer{keep: keep} }

// Write appends p, dropping the oldest bytes past twice keep.
func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 2*t.keep {
		t.b = append(t.b[:0], t.b[len(t.b)-t.keep:]...)
	}
	return len(p), nil
}

// String returns the last keep bytes or fewer, from the start of a line.
func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.b
	if len(b) > t.keep {
		b = b[len(b)-t.keep:]
		if i := strings.IndexByte(string(b), '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}
