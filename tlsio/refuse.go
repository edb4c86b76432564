package tlsio

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"reflect"
	"time"
)

// ErrHandshakeRefused means the server answered the client hello with a TLS
// internal_error alert. That is how a server refuses a connection it has no
// room for ([RefuseHandshake]: a tokenserver server does so when too many
// connections are in their TLS handshake), and how crypto/tls reports a
// server that failed to pick its configuration for the client. Trying again
// later is the cure for the first. [Dial] and [DialUnix] wrap it together
// with the alert.
var ErrHandshakeRefused = errors.New("tlsio: the server refused the TLS handshake (internal_error alert: " +
	"a tokenserver server sends it when too many connections are in their handshake; try again later)")

// alertInternalError is TLS's internal_error alert (RFC 8446, 6.2).
const alertInternalError = 80

// errNoRoom is what RefuseHandshake's configuration answers every client
// hello with; crypto/tls sends internal_error for it.
var errNoRoom = errors.New("tlsio: no room for this connection")

// refusalConfig makes crypto/tls read the client hello and answer it with
// an internal_error alert: the only alert crypto/tls lets a server send
// before its handshake has a configuration.
var refusalConfig = &tls.Config{
	GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return nil, errNoRoom },
}

// RefuseHandshake refuses a connection a server has no room for, as a TLS
// peer understands it: it reads the client hello (for at most timeout, or
// until ctx ends), answers with an internal_error alert, and closes conn. A
// client then fails with a TLS alert ([ErrHandshakeRefused] through Dial)
// rather than a bare end of stream. It returns why the handshake ended; the
// refusal itself wraps the package's internal "no room" error, anything
// else (a client that sent nothing in time, not TLS) is reported as it came.
func RefuseHandshake(ctx context.Context, conn net.Conn, timeout time.Duration) error {
	defer conn.Close()
	err := Handshake(ctx, tls.Server(conn, refusalConfig), timeout)
	if err == nil { // cannot happen: the configuration fails every hello
		return errors.New("tlsio: a refused handshake succeeded")
	}
	return err
}

// explainRefusal makes a client's handshake error that is the server's
// internal_error alert match ErrHandshakeRefused too.
func explainRefusal(err error) error {
	if !isRemoteAlert(err, alertInternalError) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrHandshakeRefused, err)
}

// isRemoteAlert reports whether err is crypto/tls's error for the alert a
// received from the peer: a *net.OpError "remote error" whose Err is
// crypto/tls's alert type (unexported, so recognised by its package and
// kind rather than by its text).
func isRemoteAlert(err error, a uint8) bool {
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "remote error" || op.Err == nil {
		return false
	}
	v := reflect.ValueOf(op.Err)
	return v.Kind() == reflect.Uint8 && v.Type().PkgPath() == "crypto/tls" && v.Uint() == uint64(a)
}
