// Command tokencat is the command-line tool of tokenserver: it writes
// development certificates, runs a token server (echo, or a command per
// token), sends tokens and prints the replies, and measures a server's
// throughput and latency against a plain crypto/tls baseline and the Node
// original, each server in a process of its own.
//
//	tokencat certs DIR [--host NAME ...] [--force]
//	tokencat serve --listen HOST:PORT --ca FILE --cert FILE --key FILE [--echo | --exec CMD] [limits]
//	tokencat send  --addr HOST:PORT --ca FILE --cert FILE --key FILE [--timeout D] [TOKEN ...]
//	tokencat bench (--addr HOST:PORT --ca FILE --cert FILE --key FILE | --self | --baseline) [flags]
//	tokencat compare [--duration D] [--reps N] [--loads LIST] [--node-dir DIR] [--cpuprofile DIR]
//	tokencat baseline --listen HOST:PORT --ca FILE --cert FILE --key FILE [--cpuprofile FILE]
//	tokencat completion bash|zsh|fish|powershell
//	tokencat --version
//
// HOST:PORT may also be unix:PATH, a Unix domain socket. --pfx FILE (PKCS #12)
// replaces --cert and --key; the passphrase of an encrypted key or PFX comes
// from --passphrase-file FILE or $TOKENCAT_PASSPHRASE, never from the command
// line. send and bench take --allow-common-name for server certificates
// without subjectAltName (those of token-server's extra/cert-gen.sh).
//
// The command line is parsed by github.com/spf13/cobra, which also writes the
// help of every command (--help, -h, or "tokencat help COMMAND") and the
// shell completion scripts.
//
// Exit codes: 0 success, 1 runtime failure, 2 usage error.
package main

import (
	"context"
	"io"
	"os"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// env is what a command runs with: its context and standard streams. Tests
// run commands in-process with their own.
type env struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// stdoutIsTerminal and stderrIsTerminal, both, enable progress output
	// (bench).
	stdoutIsTerminal, stderrIsTerminal bool
}

func main() {
	e := &env{
		ctx:              context.Background(),
		stdin:            os.Stdin,
		stdout:           os.Stdout,
		stderr:           os.Stderr,
		stdoutIsTerminal: isTerminal(os.Stdout),
		stderrIsTerminal: isTerminal(os.Stderr),
	}
	os.Exit(run(e, os.Args[1:]))
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// run runs the command line args (without the program name) and returns the
// exit code.
func run(e *env, args []string) int {
	return execute(e, newRootCommand(e), args)
}
