package tlsio

import (
	"context"
	"fmt"
	"net"
	"time"
)

// ListenConfig configures [Listen].
type ListenConfig struct {
	// KeepAlive is the TCP keep-alive period of accepted connections.
	// 0 means Go's default (15s); a negative value turns keep-alives off.
	KeepAlive time.Duration
}

// Listen opens a plain TCP listener ("tcp") on addr, for example
// "127.0.0.1:0". ctx bounds only the setup of the listener, not its life:
// close the listener to stop it.
//
// The listener does not do TLS. Wrap each accepted connection with
// tls.Server and run [Handshake] on it, so that every handshake runs under
// its own timeout and a slow or silent client holds up only itself, never
// Accept.
func Listen(ctx context.Context, addr string, lc ListenConfig) (net.Listener, error) {
	nlc := net.ListenConfig{KeepAlive: lc.KeepAlive}
	ln, err := nlc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("tlsio: listen %s: %w", addr, err)
	}
	return ln, nil
}
