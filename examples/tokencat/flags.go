package main

import (
	"fmt"
	"net"
	"strconv"

	"github.com/tokenserver/tokenserver/actors"

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

// protocolFlag is --protocol: which wire protocols a command speaks.
type protocolFlag struct{ protocols []string }

// addProtocolFlag adds --protocol to fs; p.protocols is nil (both, token/2
// first) unless a protocol is given.
func addProtocolFlag(fs *pflag.FlagSet, p *protocolFlag) {
	fs.Var(p, "protocol", "wire `PROTOCOL`: auto (token/2 with tokenserver peers, token/1 with the others), token/1 or token/2")
}

func (p *protocolFlag) String() string {
	if len(p.protocols) != 1 {
		return "auto"
	}
	return p.protocols[0]
}

func (p *protocolFlag) Set(s string) error {
	switch s {
	case "auto":
		p.protocols = nil
	case actors.ProtocolToken1, actors.ProtocolToken2:
		p.protocols = []string{s}
	default:
		return fmt.Errorf("want auto, %s or %s", actors.ProtocolToken1, actors.ProtocolToken2)
	}
	return nil
}

func (p *protocolFlag) Type() string { return "protocol" }
