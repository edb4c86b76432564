package tlsio

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"syscall"
	"time"
)

// ListenConfig configures [Listen] and [ListenUnix].
type ListenConfig struct {
	// KeepAlive is the TCP keep-alive period of accepted connections.
	// 0 means Go's default (15s); a negative value turns keep-alives off.
	// It does not apply to Unix sockets.
	KeepAlive time.Duration
}

// Listen opens a plain TCP listener ("tcp") on addr, for example
// "127.0.0.1:0". ctx bounds only the setup of the listener, not its life:
// close the listener to stop it. A port in use gives an error that matches
// both [ErrAddressInUse] and syscall.EADDRINUSE.
//
// The listener does not do TLS. Wrap each accepted connection with
// tls.Server and run [Handshake] on it, so that every handshake runs under
// its own timeout and a slow or silent client holds up only itself, never
// Accept.
func Listen(ctx context.Context, addr string, lc ListenConfig) (net.Listener, error) {
	nlc := net.ListenConfig{KeepAlive: lc.KeepAlive}
	ln, err := nlc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("tlsio: listen %s: %w", addr, inUse(err))
	}
	return ln, nil
}

// ListenUnix opens a plain listener on the Unix domain socket path (network
// "unix"), Node's path option of server.listen. Like [Listen], it does not do
// TLS, and ctx bounds only the setup.
//
// A socket file left at path by a server that is gone (a stale socket) is
// removed first, but only when nothing listens on it: ListenUnix connects to
// it, and removes it only if the connection is refused. If a server answers
// (it sees a connection closed before its handshake), or path exists and is
// not a socket, ListenUnix fails with an error that matches [ErrAddressInUse]
// and syscall.EADDRINUSE, and leaves the file alone. On Linux a path that
// starts with "@" is an abstract socket, which has no file.
//
// The listener removes its socket file when it is closed. The file's mode
// follows the umask; restrict who may connect with the permissions of its
// directory.
func ListenUnix(ctx context.Context, path string, lc ListenConfig) (net.Listener, error) {
	if path == "" {
		return nil, errors.New("tlsio: listen unix: empty socket path")
	}
	if path[0] != '@' {
		if err := removeStaleSocket(ctx, path); err != nil {
			return nil, fmt.Errorf("tlsio: listen unix %s: %w", path, err)
		}
	}
	var nlc net.ListenConfig
	ln, err := nlc.Listen(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("tlsio: listen unix %s: %w", path, inUse(err))
	}
	// Remove the socket file on Close (the default of net.Listen, made
	// explicit: the stale-socket check above relies on it).
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	return ln, nil
}

// staleProbeTimeout bounds the connection attempt that tells a stale socket
// file from a live one.
const staleProbeTimeout = 2 * time.Second

// removeStaleSocket removes the socket file at path if nothing listens on it.
func removeStaleSocket(ctx context.Context, path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%w: the file exists and is not a socket (%v): %w", ErrAddressInUse, fi.Mode().Type(), syscall.EADDRINUSE)
	}
	d := net.Dialer{Timeout: staleProbeTimeout}
	c, err := d.DialContext(ctx, "unix", path)
	if err == nil {
		c.Close()
		return fmt.Errorf("%w: a server is listening on it: %w", ErrAddressInUse, syscall.EADDRINUSE)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		// Not known to be stale (no permission, a full backlog, ...):
		// leave it.
		return fmt.Errorf("cannot tell whether the socket is stale: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale socket: %w", err)
	}
	return nil
}

// inUse makes a listen error caused by EADDRINUSE match ErrAddressInUse too,
// with its message unchanged.
func inUse(err error) error {
	if errors.Is(err, syscall.EADDRINUSE) && !errors.Is(err, ErrAddressInUse) {
		return addrInUseError{err}
	}
	return err
}

// addrInUseError is a listen error that also matches ErrAddressInUse.
type addrInUseError struct{ err error }

func (e addrInUseError) Error() string   { return e.err.Error() }
func (e addrInUseError) Unwrap() []error { return []error{ErrAddressInUse, e.err} }
