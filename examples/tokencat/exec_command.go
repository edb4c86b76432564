package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"
)

// commandRunner runs serve's --exec command for one token at a time: "sh -c
// CMD" with the token on stdin and tokencat's environment without its own
// variables (childEnv); its stdout is the reply. It is read-only once made,
// so the command goroutines share it.
type commandRunner struct {
	command   string
	timeout   time.Duration
	maxOutput int
	env       []string // the commands' environment (childEnv)
	log       *slog.Logger
	ctx       context.Context // cancelled at shutdown: kills running commands
}

// run runs the command once with token on stdin and returns its stdout.
func (r *commandRunner) run(token []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(r.ctx, r.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", r.command)
	cmd.Env = r.env
	cmd.Stdin = bytes.NewReader(token)
	stdout := &cappedBuffer{max: r.maxOutput}
	stderr := &cappedBuffer{max: 1024}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = time.Second // a grandchild holding stdout open cannot hang us
	killProcessGroup(cmd)
	err := cmd.Run()
	switch {
	case ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && r.ctx.Err() == nil:
		return nil, fmt.Errorf("timed out after %v%s", r.timeout, stderr.suffix())
	case err != nil:
		return nil, fmt.Errorf("%w%s", err, stderr.suffix())
	case stdout.over:
		return nil, fmt.Errorf("output larger than %d bytes (--max-token-size)", r.maxOutput)
	}
	if stderr.buf.Len() > 0 {
		r.log.Warn("exec stderr", "text", strings.TrimSpace(stderr.buf.String()))
	}
	return stdout.buf.Bytes(), nil
}

// envPrefix starts the names of the environment variables that tokencat
// reads (TOKENCAT_PASSPHRASE, passphraseEnv): they may hold secrets.
const envPrefix = "TOKENCAT_"

// childEnv is tokencat's environment without the variables whose names start
// with envPrefix, for the --exec commands: a command that prints or logs its
// environment does not give a client the passphrase. (The passphrase is also
// unset once read; see tlsFlags.load.)
func childEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, envPrefix) })
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
