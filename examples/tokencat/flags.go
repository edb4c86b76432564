package main

import (
	"net"
	"strconv"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// noArgs rejects positional arguments.
func noArgs(_ *cobra.Command, args []string) error {
	if len(args) != 0 {
		return usageErrorf("unexpected argument %q", args[0])
	}
	return nil
}

// requireFlags reports a usage error for the first of names that was not
// given (or given empty).
func requireFlags(fs *pflag.FlagSet, names ...string) error {
	for _, n := range names {
		fl := fs.Lookup(n)
		if fl == nil || fl.Value.String() == "" {
			return usageErrorf("missing required flag --%s", n)
		}
	}
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
