package actors

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/tokenserver/tokenserver/tlsio"
)

// Causes of a failed TLS handshake (Stats.HandshakeFailures, the cause
// attribute of tokenserver.server.handshake.failures) and of a failed connect
// attempt of a client (ConnectFailures).
const (
	// CauseTimeout: the handshake or the dial did not finish within
	// Limits.HandshakeTimeout.
	CauseTimeout = "timeout"
	// CauseCertificate: a certificate was missing, or did not verify (by us,
	// or by the peer, which said so with an alert).
	CauseCertificate = "certificate"
	// CauseClosed: the peer closed or reset the connection in the middle of
	// the handshake.
	CauseClosed = "closed"
	// CauseNotTLS: the peer does not speak TLS (a plain-text client, say).
	CauseNotTLS = "not_tls"
	// CauseTLS: another TLS failure (no common version or cipher suite, a
	// bad message).
	CauseTLS = "tls"
	// CauseRefused: nothing listens at the address (clients only).
	CauseRefused = "refused"
	// CauseOther: anything else.
	CauseOther = "other"
)

// causeNames is every cause, in the order of the stats' arrays.
var causeNames = [...]string{CauseTimeout, CauseCertificate, CauseClosed, CauseNotTLS, CauseTLS, CauseRefused, CauseOther}

const numCauses = len(causeNames)

// causeOf classifies why a handshake or a dial failed, by the types in
// err's chain: an index in causeNames.
func causeOf(err error) int {
	var (
		alert   tls.AlertError
		verify  *tls.CertificateVerificationError
		unknown x509.UnknownAuthorityError
		invalid x509.CertificateInvalidError
		host    x509.HostnameError
		record  tls.RecordHeaderError
		ne      net.Error
		op      *net.OpError
		dns     *net.DNSError
	)
	switch {
	case err == nil:
		return causeIndex(CauseOther)
	case errors.Is(err, tlsio.ErrHandshakeTimeout), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return causeIndex(CauseTimeout)
	case errors.Is(err, syscall.ECONNREFUSED):
		return causeIndex(CauseRefused)
	case errors.Is(err, errNoClientCertificate), errors.Is(err, tlsio.ErrCommonNameOnly), errors.Is(err, tlsio.ErrRevoked),
		errors.As(err, &verify), errors.As(err, &unknown), errors.As(err, &invalid), errors.As(err, &host),
		errors.As(err, &alert) && certificateAlert(alert):
		return causeIndex(CauseCertificate)
	case errors.As(err, &record):
		return causeIndex(CauseNotTLS)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		return causeIndex(CauseClosed)
	case errors.As(err, &alert):
		return causeIndex(CauseTLS)
	case (errors.Is(err, ErrHandshake) || errors.Is(err, ErrDial)) && !errors.As(err, &op) && !errors.As(err, &dns):
		// A handshake failure that is no socket's: crypto/tls reports its
		// own (no common version or cipher suite, a bad message) as plain
		// errors.
		return causeIndex(CauseTLS)
	}
	return causeIndex(CauseOther)
}

// causeIndex is the index of cause in causeNames.
func causeIndex(cause string) int {
	for i, c := range causeNames {
		if c == cause {
			return i
		}
	}
	return numCauses - 1
}

// certificateAlert reports whether a TLS alert from the peer is about a
// certificate: bad_certificate (42) to certificate_unknown (46), unknown_ca
// (48) and certificate_required (116).
func certificateAlert(a tls.AlertError) bool { return (a >= 42 && a <= 46) || a == 48 || a == 116 }

// errNoClientCertificate: the client sent no certificate to a server that
// requires one. crypto/tls reports that with a plain error; the server's
// configuration reports it with this one instead (requireClientCertificate),
// so that it is classified by its type.
var errNoClientCertificate = errors.New("tokenserver: the client sent no certificate")

// requireClientCertificate makes a server configuration that requires a
// client certificate (RequireAnyClientCert, RequireAndVerifyClientCert)
// refuse a client without one in VerifyConnection, with
// errNoClientCertificate and a bad_certificate alert, rather than in
// crypto/tls's own check: the same clients are refused, a certificate given
// is verified as before, and the failure has a type. A VerifyConnection of
// the configuration runs after the check.
func requireClientCertificate(cfg *tls.Config) {
	switch cfg.ClientAuth {
	case tls.RequireAnyClientCert:
		cfg.ClientAuth = tls.RequestClientCert
	case tls.RequireAndVerifyClientCert:
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	default:
		return
	}
	next := cfg.VerifyConnection
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errNoClientCertificate
		}
		if next != nil {
			return next(cs)
		}
		return nil
	}
}
