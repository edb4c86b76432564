// Command tokencat is the command-line tool of tokenserver: it writes
// development certificates, runs a token server (echo, or a command per
// token), sends tokens and prints the replies, and measures a server's
// throughput and latency against a plain crypto/tls baseline.
//
//	tokencat certs DIR [--host NAME ...] [--force]
//	tokencat serve --listen HOST:PORT --ca FILE --cert FILE --key FILE [--echo | --exec CMD] [limits]
//	tokencat send  --addr HOST:PORT --ca FILE --cert FILE --key FILE [--timeout D] [TOKEN ...]
//	tokencat bench (--addr HOST:PORT --ca FILE --cert FILE --key FILE | --self | --baseline) [flags]
//	tokencat compare [--duration D] [--reps N] [--max-size BYTES]
//
// Exit codes: 0 success, 1 runtime failure, 2 usage error.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// env is what a command runs with: its context and standard streams.
type env struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// stderrIsTerminal enables progress output (bench).
	stderrIsTerminal bool
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(e *env, args []string) error
}

var commands = []command{
	{"certs", "write development certificates (CA, server, client) to a directory", cmdCerts},
	{"serve", "run a token server with client certificates required (echo, or a command per token)", cmdServe},
	{"send", "send tokens to a server and print the replies", cmdSend},
	{"bench", "measure a server's throughput and latency (or of a built-in one, or a plain TLS baseline)", cmdBench},
	{"compare", "measure the actors server against the plain TLS baseline, every target load, as ratios", cmdCompare},
}

func main() {
	e := &env{
		ctx:              context.Background(),
		stdin:            os.Stdin,
		stdout:           os.Stdout,
		stderr:           os.Stderr,
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
	if len(args) == 0 {
		fmt.Fprintln(e.stderr, "tokencat: missing command")
		printMainUsage(e.stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help", "help":
		if name == "help" && len(args) > 1 {
			// "tokencat help serve" is "tokencat serve --help".
			return run(e, []string{args[1], "--help"})
		}
		printMainUsage(e.stdout)
		return exitOK
	}
	for _, c := range commands {
		if c.name != name {
			continue
		}
		err := c.run(e, args[1:])
		var ue *usageError
		switch {
		case err == nil:
			return exitOK
		case errors.Is(err, errHelpShown):
			return exitOK
		case errors.As(err, &ue):
			fmt.Fprintf(e.stderr, "tokencat %s: %s\nRun 'tokencat %s --help' for usage.\n", name, ue.msg, name)
			return exitUsage
		default:
			fmt.Fprintf(e.stderr, "tokencat %s: %v\n", name, err)
			return exitFailure
		}
	}
	fmt.Fprintf(e.stderr, "tokencat: unknown command %q\n", name)
	printMainUsage(e.stderr)
	return exitUsage
}

func printMainUsage(w io.Writer) {
	fmt.Fprint(w, `tokencat: the command-line tool of tokenserver (token/1 over mutual TLS).

Usage:
  tokencat <command> [flags] [arguments]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-6s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Run 'tokencat <command> --help' for the flags of a command.
Exit codes: 0 success, 1 runtime failure, 2 usage error.
`)
}
