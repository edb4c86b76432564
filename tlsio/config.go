package tlsio

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"strings"
	"sync"
)

// ServerConfig builds the *tls.Config of a server from o.
//
//   - The base is a clone of o.TLSConfig (or an empty config); o.TLSConfig is
//     never modified. MinVersion is raised to at least TLS 1.2; the maximum
//     stays Go's default (TLS 1.3).
//   - Key and Cert, when given, replace the base's Certificates. Without them
//     the base must provide Certificates, GetCertificate or
//     GetConfigForClient, or ServerConfig fails with [ErrNoCertificate].
//     Only one of Key and Cert gives [ErrIncompleteKeyPair].
//   - CA, when given, becomes ClientCAs.
//   - RequestCert with RejectUnauthorized true (or nil) sets
//     tls.RequireAndVerifyClientCert: a client without a certificate, or
//     with one that does not verify against ClientCAs, fails the handshake.
//     Without any ClientCAs this is [ErrNoCA] (Go would otherwise fall back
//     to the system roots, which is never what is meant here).
//   - RequestCert with RejectUnauthorized false sets tls.RequestClientCert:
//     a certificate is asked for but not required and not verified, so any
//     client connects, as in Node, where such a connection is let through
//     (there flagged unauthorized). Inspect ConnectionState().PeerCertificates
//     if it matters. A warning is logged once per process.
//   - Without RequestCert, ClientAuth is left as in the base, which is
//     tls.NoClientCert unless o.TLSConfig says otherwise.
//
// Malformed PEM gives [ErrBadPEM]; a key that does not belong to the
// certificate gives [ErrKeyMismatch].
func ServerConfig(o Options) (*tls.Config, error) {
	cfg := baseConfig(o.TLSConfig)
	if err := applyKeyPair(cfg, o); err != nil {
		return nil, err
	}
	if len(cfg.Certificates) == 0 && cfg.GetCertificate == nil && cfg.GetConfigForClient == nil {
		return nil, fmt.Errorf("%w: set Options.Key and Options.Cert", ErrNoCertificate)
	}
	if len(o.CA) > 0 {
		pool, err := certPool(o.CA)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
	}
	if o.RequestCert {
		if o.rejectUnauthorized() {
			if cfg.ClientCAs == nil {
				return nil, fmt.Errorf("%w: set Options.CA, or RejectUnauthorized to false", ErrNoCA)
			}
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		} else {
			warnInsecure(&warnServerOnce, "tlsio: rejectUnauthorized is false: client certificates are requested but not verified")
			cfg.ClientAuth = tls.RequestClientCert
		}
	}
	return cfg, nil
}

// ClientConfig builds the *tls.Config of a client from o.
//
//   - The base is a clone of o.TLSConfig (or an empty config); o.TLSConfig is
//     never modified. MinVersion is raised to at least TLS 1.2; the maximum
//     stays Go's default (TLS 1.3).
//   - Key and Cert, when given, become the client certificate
//     (Certificates). Only one of them gives [ErrIncompleteKeyPair].
//   - CA, when given, becomes RootCAs; otherwise the base's RootCAs are kept
//     (nil: the system roots).
//   - ServerName, when given, is set; otherwise [Dial] uses the dialed host.
//   - RejectUnauthorized false sets InsecureSkipVerify (and logs a warning
//     once per process); true clears it. nil keeps the base's value, which
//     is false (verify) unless o.TLSConfig says otherwise.
//
// Malformed PEM gives [ErrBadPEM]; a key that does not belong to the
// certificate gives [ErrKeyMismatch].
func ClientConfig(o Options) (*tls.Config, error) {
	cfg := baseConfig(o.TLSConfig)
	if err := applyKeyPair(cfg, o); err != nil {
		return nil, err
	}
	if len(o.CA) > 0 {
		pool, err := certPool(o.CA)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if o.ServerName != "" {
		cfg.ServerName = o.ServerName
	}
	if o.RejectUnauthorized != nil {
		if *o.RejectUnauthorized {
			cfg.InsecureSkipVerify = false
		} else {
			warnInsecure(&warnClientOnce, "tlsio: rejectUnauthorized is false: server certificates are not verified")
			cfg.InsecureSkipVerify = true
		}
	}
	return cfg, nil
}

var warnServerOnce, warnClientOnce sync.Once

// warnInsecure logs msg once per process (per once) through slog.Default().
func warnInsecure(once *sync.Once, msg string) {
	once.Do(func() { slog.Default().Warn(msg) })
}

func baseConfig(t *tls.Config) *tls.Config {
	var cfg *tls.Config
	if t != nil {
		cfg = t.Clone()
	} else {
		cfg = &tls.Config{}
	}
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS12
	}
	return cfg
}

// applyKeyPair sets cfg.Certificates from o.Key and o.Cert, if given.
func applyKeyPair(cfg *tls.Config, o Options) error {
	switch {
	case len(o.Key) == 0 && len(o.Cert) == 0:
		return nil
	case len(o.Cert) == 0:
		return fmt.Errorf("%w: key given without cert", ErrIncompleteKeyPair)
	case len(o.Key) == 0:
		return fmt.Errorf("%w: cert given without key", ErrIncompleteKeyPair)
	}
	// Parse both first so that malformed input is reported as such, not as
	// a mismatch.
	if _, err := parseKey(o.Key); err != nil {
		return err
	}
	if _, err := parseCerts("cert", o.Cert); err != nil {
		return err
	}
	pair, err := tls.X509KeyPair(o.Cert, o.Key)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrKeyMismatch, err)
	}
	cfg.Certificates = []tls.Certificate{pair}
	return nil
}

// certPool parses every certificate in the PEM bundle b into a pool.
func certPool(b []byte) (*x509.CertPool, error) {
	certs, err := parseCerts("ca", b)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// parseCerts parses every CERTIFICATE block of b. Blocks of other types are
// skipped; at least one certificate is required. what names the input in
// errors.
func parseCerts(what string, b []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for n := 1; ; {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: certificate %d: %w", ErrBadPEM, what, n, err)
		}
		certs = append(certs, c)
		n++
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w: %s: no PEM CERTIFICATE block found", ErrBadPEM, what)
	}
	return certs, nil
}

// parseKey parses the first private key block of b (PKCS #8, PKCS #1 or
// SEC 1). Encrypted keys are refused.
func parseKey(b []byte) (crypto.PrivateKey, error) {
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return nil, fmt.Errorf("%w: key: no PEM PRIVATE KEY block found", ErrBadPEM)
		}
		if block.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(block.Headers["Proc-Type"], "ENCRYPTED") {
			return nil, fmt.Errorf("%w: key: encrypted private keys are not supported", ErrBadPEM)
		}
		var key crypto.PrivateKey
		var err error
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		default:
			continue // e.g. EC PARAMETERS before the key
		}
		if err != nil {
			return nil, fmt.Errorf("%w: key: %s: %w", ErrBadPEM, strings.ToLower(block.Type), err)
		}
		return key, nil
	}
}
