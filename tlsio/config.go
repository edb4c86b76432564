package tlsio

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"sync"
)

// ServerConfig builds the *tls.Config of a server from o.
//
//   - The base is a clone of o.TLSConfig (or an empty config); o.TLSConfig is
//     never modified. MinVersion is raised to at least TLS 1.2; the maximum
//     stays Go's default (TLS 1.3). Unless the base sets CipherSuites, TLS
//     1.2 offers only ECDHE suites with AES-GCM or ChaCha20-Poly1305 (Go's
//     defaults also have AES-CBC with HMAC-SHA1).
//   - Session tickets are off (SessionTicketsDisabled), whatever the base
//     says: no connection resumes a session, so every handshake verifies
//     the client certificate in full, against the CA and revocation list in
//     use at the time (see [ServerSource]), and no ticket key, which would
//     decrypt every TLS 1.2 session it resumed, is held. Token connections
//     are long lived, so resumption would save little: a connection is one
//     full handshake, then any number of tokens.
//   - Key and Cert (Key decrypted with Passphrase if it is encrypted), or
//     PFX, when given, replace the base's Certificates. Without them the
//     base must provide Certificates, GetCertificate or GetConfigForClient,
//     or ServerConfig fails with [ErrNoCertificate]. Only one of Key and
//     Cert gives [ErrIncompleteKeyPair]; PFX with either,
//     [ErrPFXWithKeyPair].
//   - CA, when given, becomes ClientCAs (with the self-signed certificates
//     of PFX only if [Options.TrustPFXRoots] asks for them).
//   - RequestCert with RejectUnauthorized true (or nil) sets
//     tls.RequireAndVerifyClientCert: a client without a certificate, or
//     with one that does not verify against ClientCAs, fails the handshake.
//     Without CA (and without ClientCAs in TLSConfig), client certificates
//     are verified against the system roots (x509.SystemCertPool), as Node
//     verifies them against its default root store; the server then lists
//     every system root in its certificate request. Only when there is no
//     system root store (SystemCertPool fails or is empty) is it [ErrNoCA].
//   - RequestCert with RejectUnauthorized false sets tls.RequestClientCert:
//     a certificate is asked for but not required and not verified, so any
//     client connects, as in Node, where such a connection is let through
//     (there flagged unauthorized). Inspect ConnectionState().PeerCertificates
//     if it matters. A warning is logged once per process.
//   - Without RequestCert, ClientAuth is left as in the base, which is
//     tls.NoClientCert unless o.TLSConfig says otherwise.
//   - CRL, when given, is checked in VerifyConnection (before the base's
//     own VerifyConnection, if any): a client whose verified chain holds a
//     revoked certificate fails its handshake with a *[RevokedError]
//     ([ErrRevoked]). See [Options.CRL].
//
// Malformed PEM gives [ErrBadPEM], a malformed PFX [ErrBadPFX], a wrong or
// missing passphrase [ErrBadPassphrase]; a key that does not belong to the
// certificate gives [ErrKeyMismatch]; an unusable CRL [ErrBadCRL].
// [Options.AllowCommonName] changes nothing on a server.
func ServerConfig(o Options) (*tls.Config, error) {
	cfg, _, err := serverConfig(o)
	return cfg, err
}

// serverConfig is ServerConfig, with the revocation lists it installed (nil
// when o.CRL is empty).
func serverConfig(o Options) (*tls.Config, *revocation, error) {
	cfg := baseConfig(o.TLSConfig)
	// Every connection runs a full handshake: see the doc comment.
	cfg.SessionTicketsDisabled = true
	pfxRoots, err := applyKeyPair(cfg, o)
	if err != nil {
		return nil, nil, err
	}
	if len(cfg.Certificates) == 0 && cfg.GetCertificate == nil && cfg.GetConfigForClient == nil {
		return nil, nil, fmt.Errorf("%w: set Options.Key and Options.Cert, or Options.PFX", ErrNoCertificate)
	}
	pool, err := trustPool(o, pfxRoots)
	if err != nil {
		return nil, nil, err
	}
	if pool != nil {
		cfg.ClientCAs = pool
	}
	if o.RequestCert {
		if o.rejectUnauthorized() {
			if cfg.ClientCAs == nil {
				sys, err := systemRoots()
				if err != nil {
					return nil, nil, fmt.Errorf("%w: set Options.CA, or RejectUnauthorized to false (%w)", ErrNoCA, err)
				}
				cfg.ClientCAs = sys
			}
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		} else {
			warnInsecure(&warnServerOnce, "tlsio: rejectUnauthorized is false: client certificates are requested but not verified")
			cfg.ClientAuth = tls.RequestClientCert
		}
	}
	rev, err := revocationOf(o)
	if err != nil {
		return nil, nil, err
	}
	cfg.VerifyConnection = rev.verifyConnection(cfg.VerifyConnection)
	return cfg, rev, nil
}

// ClientConfig builds the *tls.Config of a client from o.
//
//   - The base is a clone of o.TLSConfig (or an empty config); o.TLSConfig is
//     never modified. MinVersion is raised to at least TLS 1.2; the maximum
//     stays Go's default (TLS 1.3). Unless the base sets CipherSuites, TLS
//     1.2 offers only ECDHE suites with AES-GCM or ChaCha20-Poly1305.
//   - Key and Cert (Key decrypted with Passphrase if it is encrypted), or
//     PFX, when given, become the client certificate (Certificates). Only
//     one of Key and Cert gives [ErrIncompleteKeyPair]; PFX with either,
//     [ErrPFXWithKeyPair].
//   - CA, when given, becomes RootCAs (with the self-signed certificates of
//     PFX only if [Options.TrustPFXRoots] asks for them); otherwise the
//     base's RootCAs are kept, and nil means the system roots, as Node uses
//     its default root store (with the self-signed certificates of PFX, see
//     [Options.PFX]).
//   - ServerName, when given, is set; otherwise [Dial] uses the dialed host
//     and [DialUnix] "localhost".
//   - RejectUnauthorized false sets InsecureSkipVerify (and logs a warning
//     once per process); true clears it. nil keeps the base's value, which
//     is false (verify) unless o.TLSConfig says otherwise.
//   - AllowCommonName, when the server certificate is verified, replaces
//     crypto/tls's verification by an equivalent one in VerifyConnection
//     that also accepts a certificate named only by its Common Name (see
//     [Options.AllowCommonName]).
//   - CRL, when given and the server certificate is verified, refuses a
//     server whose chain holds a revoked certificate, with a
//     *[RevokedError] ([ErrRevoked]).
//
// Malformed PEM gives [ErrBadPEM], a malformed PFX [ErrBadPFX], a wrong or
// missing passphrase [ErrBadPassphrase]; a key that does not belong to the
// certificate gives [ErrKeyMismatch]; an unusable CRL [ErrBadCRL].
func ClientConfig(o Options) (*tls.Config, error) {
	cfg, _, err := clientConfig(o)
	return cfg, err
}

// clientConfig is ClientConfig, with the revocation lists it installed (nil
// when o.CRL is empty).
func clientConfig(o Options) (*tls.Config, *revocation, error) {
	cfg := baseConfig(o.TLSConfig)
	pfxRoots, err := applyKeyPair(cfg, o)
	if err != nil {
		return nil, nil, err
	}
	pool, err := trustPool(o, pfxRoots)
	if err != nil {
		return nil, nil, err
	}
	if pool != nil {
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
	rev, err := revocationOf(o)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case cfg.InsecureSkipVerify:
		// Nothing is verified, so nothing is checked against the lists.
	case o.AllowCommonName:
		v := &serverVerifier{
			roots:      cfg.RootCAs,
			now:        cfg.Time,
			serverName: cfg.ServerName,
			revoked:    rev,
			verifyPeer: cfg.VerifyPeerCertificate,
			verifyConn: cfg.VerifyConnection,
		}
		cfg.InsecureSkipVerify = true // verified by v instead, in full
		cfg.VerifyPeerCertificate = nil
		cfg.VerifyConnection = v.verify
	default:
		cfg.VerifyConnection = rev.verifyConnection(cfg.VerifyConnection)
	}
	return cfg, rev, nil
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
	if cfg.CipherSuites == nil {
		cfg.CipherSuites = append([]uint16(nil), aeadSuites...)
	}
	return cfg
}

// applyKeyPair sets cfg.Certificates from o.Key and o.Cert, or o.PFX, if
// given. It returns the self-signed certificates of the PFX, which are
// trusted to verify the peer, as in Node.
func applyKeyPair(cfg *tls.Config, o Options) ([]*x509.Certificate, error) {
	if len(o.PFX) > 0 {
		if len(o.Key) > 0 || len(o.Cert) > 0 {
			return nil, fmt.Errorf("%w: give either PFX or Key and Cert", ErrPFXWithKeyPair)
		}
		pair, roots, err := pfxKeyPair(o.PFX, o.Passphrase)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{pair}
		return roots, nil
	}
	switch {
	case len(o.Key) == 0 && len(o.Cert) == 0:
		return nil, nil
	case len(o.Cert) == 0:
		return nil, fmt.Errorf("%w: key given without cert", ErrIncompleteKeyPair)
	case len(o.Key) == 0:
		return nil, fmt.Errorf("%w: cert given without key", ErrIncompleteKeyPair)
	}
	// Parse both first so that malformed input is reported as such, not as
	// a mismatch.
	key, encrypted, err := parseKey(o.Key, o.Passphrase)
	if err != nil {
		return nil, err
	}
	if _, err := parseCerts("cert", o.Cert); err != nil {
		return nil, err
	}
	keyPEM := o.Key
	if encrypted {
		if keyPEM, err = keyToPEM(key); err != nil {
			return nil, err
		}
	}
	pair, err := tls.X509KeyPair(o.Cert, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyMismatch, err)
	}
	cfg.Certificates = []tls.Certificate{pair}
	return nil, nil
}

// trustPool returns the pool to verify the peer against: the certificates
// of o.CA, plus the extra ones (the self-signed certificates of a PFX) when
// o.TrustPFXRoots asks for them. With extra but no CA, the extra ones are
// added to the system roots, as Node adds them to its default root store.
// It returns nil, for "unchanged", when both are empty.
func trustPool(o Options, extra []*x509.Certificate) (*x509.CertPool, error) {
	var pool *x509.CertPool
	switch {
	case len(o.CA) > 0:
		var err error
		if pool, err = certPool(o.CA); err != nil {
			return nil, err
		}
		if !o.TrustPFXRoots {
			return pool, nil
		}
	case len(extra) > 0:
		var err error
		if pool, err = systemRoots(); err != nil {
			pool = x509.NewCertPool()
		}
	default:
		return nil, nil
	}
	for _, c := range extra {
		pool.AddCert(c)
	}
	return pool, nil
}

// systemCertPool is x509.SystemCertPool; tests replace it.
var systemCertPool = x509.SystemCertPool

// systemRoots returns a copy of the system root store, or an error when
// there is none: x509.SystemCertPool fails or finds no certificate.
func systemRoots() (*x509.CertPool, error) {
	pool, err := systemCertPool()
	if err != nil {
		return nil, fmt.Errorf("no system root store: %w", err)
	}
	// On Unix an empty store is a pool without certificates; on macOS and
	// Windows the pool stands for the platform verifier and never equals
	// an empty one.
	if pool == nil || pool.Equal(x509.NewCertPool()) {
		return nil, errors.New("the system root store is empty")
	}
	return pool, nil
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
