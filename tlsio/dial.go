package tlsio

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// DefaultHandshakeTimeout is the handshake timeout used by [Handshake] and
// [Dial] when none is given.
const DefaultHandshakeTimeout = 10 * time.Second

// Handshake runs the TLS handshake of c (client or server side), bounded by
// ctx and by timeout: 0 means [DefaultHandshakeTimeout], a negative value
// means no timeout beyond ctx.
//
// When the timeout expires first, the error wraps both [ErrHandshakeTimeout]
// and context.DeadlineExceeded. When ctx ends first, the error wraps ctx's
// error (context.Canceled or context.DeadlineExceeded) but not
// ErrHandshakeTimeout. Any other failure (a bad certificate, a protocol
// error, a closed connection) is wrapped as "tlsio: TLS handshake: %w". A
// client's refusal of a server certificate that names its host only in its
// Common Name also matches [ErrCommonNameOnly], and its message says which
// option to set (see [Options.AllowCommonName]).
//
// When the handshake is interrupted by the timeout or ctx, crypto/tls has
// already closed the underlying connection. In every case the caller still
// owns c and should Close it after a failure.
func Handshake(ctx context.Context, c *tls.Conn, timeout time.Duration) error {
	if timeout == 0 {
		timeout = DefaultHandshakeTimeout
	}
	hctx := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		hctx, cancel = context.WithTimeoutCause(ctx, timeout, ErrHandshakeTimeout)
		defer cancel()
	}
	err := c.HandshakeContext(hctx)
	if err == nil {
		return nil
	}
	// Our own timer fired first (not the parent's deadline or cancellation):
	// the cause of hctx is then ErrHandshakeTimeout.
	if timeout > 0 && errors.Is(context.Cause(hctx), ErrHandshakeTimeout) {
		return fmt.Errorf("%w after %v: %w", ErrHandshakeTimeout, timeout, context.DeadlineExceeded)
	}
	if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		// The handshake failed because ctx ended (the connection was
		// closed under it); report the context's error too.
		return fmt.Errorf("tlsio: TLS handshake: %w: %w", ctx.Err(), err)
	}
	return fmt.Errorf("tlsio: TLS handshake: %w", explainCommonName(err))
}

// DialConfig configures [Dial].
type DialConfig struct {
	// HandshakeTimeout bounds the TLS handshake: 0 means
	// [DefaultHandshakeTimeout], a negative value means no timeout beyond
	// the context given to Dial.
	HandshakeTimeout time.Duration

	// KeepAlive is the TCP keep-alive period. 0 means Go's default (15s);
	// a negative value turns keep-alives off.
	KeepAlive time.Duration
}

// Dial connects to addr ("host:port") over TCP, bounded by ctx, and runs the
// client side of the TLS handshake with cfg, bounded by ctx and
// dc.HandshakeTimeout (see [Handshake]).
//
// cfg is cloned, never modified; nil means an empty config. When its
// ServerName is empty, the host part of addr is used, so the server
// certificate must be valid for the name or IP address that was dialed.
// crypto/tls sends no SNI for an IP address and then leaves
// ConnectionState.ServerName empty; in that case Dial sets it, in the state
// it hands cfg's VerifyConnection, to the server name in use, so that a hook
// (the one of [Options.AllowCommonName] among them) can check IP SANs.
//
// On failure the socket is closed and the error, which names addr, wraps the
// cause (for example [ErrHandshakeTimeout], a *net.OpError, a
// *tls.CertificateVerificationError, or [ErrHandshakeRefused] when the
// server had no room for the connection).
func Dial(ctx context.Context, addr string, cfg *tls.Config, dc DialConfig) (*tls.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("tlsio: dial %s: %w", addr, err)
	}
	// An IPv6 zone ("fe80::1%eth0") is not part of any certificate.
	if i := strings.IndexByte(host, '%'); i >= 0 {
		host = host[:i]
	}
	return dial(ctx, "tcp", addr, host, "tlsio: dial "+addr, cfg, dc)
}

// DialUnix connects to the Unix domain socket at path, bounded by ctx, and
// runs the client side of the TLS handshake with cfg, as [Dial] does over
// TCP: TLS over a Unix socket, Node's path option of tls.connect.
//
// A Unix socket has no host name, so the server certificate is verified
// against cfg.ServerName (set it with [Options.ServerName]); when that is
// empty, against "localhost", as Node does. dc.KeepAlive does not apply.
//
// On failure the socket is closed and the error, which names path, wraps the
// cause (for example fs.ErrNotExist or syscall.ECONNREFUSED in a
// *net.OpError, [ErrHandshakeTimeout], a *tls.CertificateVerificationError).
func DialUnix(ctx context.Context, path string, cfg *tls.Config, dc DialConfig) (*tls.Conn, error) {
	return dial(ctx, "unix", path, "localhost", "tlsio: dial unix "+path, cfg, dc)
}

// dial connects to addr over network and runs the client handshake, with
// serverName as the server name when cfg has none. what prefixes errors.
func dial(ctx context.Context, network, addr, serverName, what string, cfg *tls.Config, dc DialConfig) (*tls.Conn, error) {
	var c *tls.Config
	if cfg != nil {
		c = cfg.Clone()
	} else {
		c = &tls.Config{}
	}
	if c.ServerName == "" {
		c.ServerName = serverName
	}
	if vc := c.VerifyConnection; vc != nil {
		name := c.ServerName
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			if cs.ServerName == "" {
				cs.ServerName = name
			}
			return vc(cs)
		}
	}

	d := net.Dialer{KeepAlive: dc.KeepAlive}
	raw, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	tc := tls.Client(raw, c)
	if err := Handshake(ctx, tc, dc.HandshakeTimeout); err != nil {
		tc.Close()
		return nil, fmt.Errorf("%s: %w", what, explainRefusal(err))
	}
	return tc, nil
}
