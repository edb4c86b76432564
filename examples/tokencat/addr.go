package main

import (
	"context"
	"crypto/tls"
	"net"
	"strings"

	"github.com/tokenserver/tokenserver/tlsio"
)

// unixPrefix marks an address that is a Unix domain socket: "unix:PATH".
const unixPrefix = "unix:"

// address is where a server listens or a client connects: a host and port,
// or the path of a Unix domain socket.
type address struct {
	host string
	port int
	path string // a Unix socket when not empty; host and port are then unused
}

// parseAddr parses the value of flag flagName: "unix:PATH" (TLS over a Unix
// domain socket, Node's path option) or "HOST:PORT" (HOST may be empty, or
// an IPv6 address in brackets). Any value that starts with "unix:" is a
// socket path, so a host named "unix" is written "unix.:PORT".
func parseAddr(flagName, s string) (address, error) {
	if path, ok := strings.CutPrefix(s, unixPrefix); ok {
		if path == "" {
			return address{}, usageErrorf("--%s %q: want unix:PATH with a socket path", flagName, s)
		}
		return address{path: path}, nil
	}
	if _, _, err := net.SplitHostPort(s); err != nil {
		return address{}, usageErrorf("--%s %q: want HOST:PORT or unix:PATH", flagName, s)
	}
	host, port, err := splitHostPort(flagName, s) // checks the port
	if err != nil {
		return address{}, err
	}
	return address{host: host, port: port}, nil
}

// formatAddr is how serve names the address it listens on in its first
// line: "HOST:PORT", or "unix:PATH" for a Unix domain socket, so that the
// text after "listening on " is a valid --addr for send and bench.
func formatAddr(a net.Addr) string {
	if a.Network() == "unix" {
		return unixPrefix + a.String()
	}
	return a.String()
}

// dialAddr connects to addr ("HOST:PORT" or "unix:PATH") over TLS with cfg,
// for the load generator of bench. A Unix socket has no host name: the
// server certificate is verified for "localhost" unless cfg has a
// ServerName (see tlsio.DialUnix).
func dialAddr(ctx context.Context, addr string, cfg *tls.Config) (*tls.Conn, error) {
	if path, ok := strings.CutPrefix(addr, unixPrefix); ok {
		return tlsio.DialUnix(ctx, path, cfg, tlsio.DialConfig{})
	}
	return tlsio.Dial(ctx, addr, cfg, tlsio.DialConfig{})
}
