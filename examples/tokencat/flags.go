package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"text/tabwriter"
)

// errHelpShown is returned by parseArgs after printing a command's help: the
// command stops and tokencat exits 0.
var errHelpShown = errors.New("help shown")

// usageError is a command line that cannot work: tokencat exits 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// cmdFlags is the flag set of one command with the text of its help.
type cmdFlags struct {
	*flag.FlagSet
	usage       string // "certs DIR [--host NAME ...] [--force]"
	description string
	out         io.Writer // where --help goes
}

// newFlags returns an empty flag set for a command. --help prints to out.
func newFlags(e *env, name, usage, description string) *cmdFlags {
	fs := flag.NewFlagSet("tokencat "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported by run, help by printHelp
	return &cmdFlags{FlagSet: fs, usage: usage, description: description, out: e.stdout}
}

// printHelp writes the command's help: usage line, description, flags.
func (f *cmdFlags) printHelp(w io.Writer) {
	fmt.Fprintf(w, "Usage:\n  tokencat %s\n\n%s\n\nFlags:\n", f.usage, strings.TrimSpace(f.description))
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	f.VisitAll(func(fl *flag.Flag) {
		name, usage := flag.UnquoteUsage(fl)
		left := "--" + fl.Name
		if name != "" {
			left += " " + name
		}
		if fl.DefValue != "" && fl.DefValue != "false" && fl.DefValue != "0" && fl.DefValue != "0s" && fl.DefValue != "[]" {
			usage += fmt.Sprintf(" (default %s)", fl.DefValue)
		}
		fmt.Fprintf(tw, "  %s\t%s\n", left, usage)
	})
	fmt.Fprintf(tw, "  %s\t%s\n", "-h, --help", "show this help")
	tw.Flush()
}

// parse parses args, allowing flags after positional arguments ("certs DIR
// --force"); everything after "--" is positional. It returns the positional
// arguments, errHelpShown after printing the help, or a usage error.
func (f *cmdFlags) parse(args []string) ([]string, error) {
	var pos []string
	for {
		err := f.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			f.printHelp(f.out)
			return nil, errHelpShown
		}
		if err != nil {
			return nil, &usageError{err.Error()}
		}
		rest := f.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// require reports a usage error for the first of names that was not given
// (or given empty).
func (f *cmdFlags) require(names ...string) error {
	for _, n := range names {
		fl := f.Lookup(n)
		if fl == nil || fl.Value.String() == "" {
			return usageErrorf("missing required flag --%s", n)
		}
	}
	return nil
}

// given reports whether flag name was set on the command line.
func (f *cmdFlags) given(name string) bool {
	found := false
	f.Visit(func(fl *flag.Flag) {
		if fl.Name == name {
			found = true
		}
	})
	return found
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }

func (s *stringList) Set(v string) error {
	*s = append(*s, v)
	return nil
}

// splitHostPort parses "HOST:PORT" (HOST may be empty, or an IPv6 address in
// brackets) with a port in 0..65535.
func splitHostPort(flagName, s string) (string, int, error) {
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, usageErrorf("--%s %q: want HOST:PORT", flagName, s)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, usageErrorf("--%s %q: bad port %q", flagName, s, p)
	}
	return host, port, nil
}
