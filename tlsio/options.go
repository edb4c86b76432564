package tlsio

import (
	"crypto/tls"
	"fmt"
	"os"
)

// Options are the TLS options of npm token-server (which passes them to
// node's tls module): key, cert, ca, passphrase, pfx, requestCert and
// rejectUnauthorized, plus a client-side ServerName, AllowCommonName for
// certificates without subjectAltName, and an escape hatch for any other TLS
// setting.
//
// Turn them into a *tls.Config with [ServerConfig] or [ClientConfig].
type Options struct {
	// Key and Cert are the PEM-encoded private key and certificate (chain)
	// this side presents: the server certificate for a server, the client
	// certificate for a client. They must be given together or not at all.
	// Cert may hold intermediate certificates after the leaf.
	//
	// Key may be encrypted (see Passphrase): PKCS #8 "ENCRYPTED PRIVATE
	// KEY", what current openssl writes, or the legacy "Proc-Type:
	// 4,ENCRYPTED" form of "RSA PRIVATE KEY" and "EC PRIVATE KEY".
	Key, Cert []byte

	// Passphrase decrypts an encrypted Key or PFX, as Node's passphrase
	// option. It is ignored for a key that is not encrypted. A wrong one,
	// or none for an encrypted key, makes [ServerConfig] and [ClientConfig]
	// fail with [ErrBadPassphrase].
	//
	// Supported: PKCS #8 with PBES2 (PBKDF2 with HMAC-SHA-1, -224, -256,
	// -384 or -512, or scrypt; AES-128/192/256-CBC or DES-EDE3-CBC), the
	// legacy PEM encryption (Proc-Type/DEK-Info; AES-CBC, DES-CBC,
	// DES-EDE3-CBC), and what PKCS #12 archives use (see PFX). The older
	// PKCS #5 v1.5 and PKCS #12 schemes for PKCS #8 keys are not
	// (ErrBadPEM); re-encrypt such a key with
	// "openssl pkcs8 -topk8 -v2 aes-256-cbc".
	Passphrase string

	// PFX is a PKCS #12 archive (the bytes of a .pfx or .p12 file, DER, not
	// PEM) holding this side's private key and certificate, and possibly
	// its chain: an alternative to Key and Cert, as Node's pfx option.
	// Giving both is [ErrPFXWithKeyPair]. Passphrase decrypts it.
	//
	// The CA certificates in the archive are sent after the leaf as its
	// chain. When CA is empty, the self-signed ones among them are also
	// trusted to verify the peer, in addition to the system roots, as in
	// Node. When CA is given, they are not (unlike Node, which adds them to
	// CA): a server whose own certificate chains to a public or shared
	// root would otherwise accept every client certificate from that root.
	// Set TrustPFXRoots to trust them as well.
	PFX []byte

	// TrustPFXRoots, with both PFX and CA given, trusts the self-signed
	// certificates of PFX to verify the peer in addition to CA, as Node
	// does. Without CA they are trusted anyway (see PFX).
	TrustPFXRoots bool

	// CA is PEM and may hold several certificates. A server verifies client
	// certificates against it; a client verifies the server certificate
	// against it. When CA is empty both use the system roots, as Node uses
	// its default root store (see [ServerConfig] and [ClientConfig]).
	CA []byte

	// CRL is a certificate revocation list, or several, as Node's crl
	// option: PEM ("X509 CRL" blocks, as many as needed) or one list in
	// DER. A peer whose verified chain holds a certificate that a list
	// revokes fails its handshake with a *[RevokedError], which matches
	// [ErrRevoked] and names the serial number. A server checks client
	// certificates (with RequestCert), a client the server's.
	//
	// Each list must be signed by a certificate of CA (a root or an
	// intermediate; CA is required with CRL), and applies only to the
	// certificates that this CA issued, so a list can never revoke the
	// certificates of another CA; a list of another issuer, or whose
	// signature does not verify, is [ErrBadCRL]. Several lists of one CA
	// add up. Unlike Node (openssl with CRL_CHECK_ALL), a CA without a list
	// is not an error, and neither is a list past its nextUpdate: the lists
	// given are applied as they are (see Info.CRLNextUpdate of a
	// [ServerSource]). Delta lists are read as complete ones. Nothing is
	// checked when verification is off (RejectUnauthorized false).
	//
	// A [ServerSource] swaps the lists in place, and says whether a
	// connection already established is revoked under the new ones
	// ([ServerSource.Revoked]).
	CRL []byte

	// RequestCert makes a server ask for a client certificate. Ignored by
	// clients.
	RequestCert bool

	// RejectUnauthorized controls verification of the peer's certificate.
	// nil means true, as in Node; use [Bool] to set it.
	//
	// Server with RequestCert: true requires a client certificate and
	// verifies it against CA; false asks for one but accepts any, or none
	// (see [ServerConfig]). Client: true verifies the server certificate
	// against CA (or the system roots) and checks its name; false skips all
	// verification. Setting it to false logs a warning once.
	RejectUnauthorized *bool

	// ServerName is the name a client verifies the server certificate
	// against (and sends as SNI). Empty means the host being dialed: [Dial]
	// fills it in, and [DialUnix], which has no host, uses "localhost", as
	// Node does for its path option. Ignored by servers.
	ServerName string

	// AllowCommonName makes a client accept a server certificate that names
	// its host only in the legacy Common Name field (CN) of its subject, as
	// Node does: certificates made by token-server's extra/cert-gen.sh (CN
	// only, no subjectAltName) work with it.
	//
	// The chain is still verified in full against CA (or the system roots)
	// with its intermediates, key usages and validity period. Only when the
	// certificate has no DNS or IP subjectAltName at all is its Common Name
	// compared with the server name, the way Node's tls.checkServerIdentity
	// does: case-insensitively, a wildcard only in the first of at least
	// three labels, and never with an IP address (dial by name, or set
	// ServerName). A certificate with a DNS or IP subjectAltName is checked
	// exactly as without the option.
	//
	// The server name a Common Name was accepted for must then lie within
	// the DNS name constraints of every CA of the chain (permitted and
	// excluded subtrees), as openssl verify requires of a Common Name:
	// otherwise the handshake fails with an x509.CertificateInvalidError
	// whose Reason is x509.CANotAuthorizedForThisName. openssl skips a
	// Common Name without a dot; tlsio checks every name, so "localhost"
	// under a CA that permits only "example.com" is refused.
	//
	// It is off by default because Go, like browsers, no longer accepts a
	// host name in the Common Name: it has been deprecated since RFC 2818
	// (2000), and crypto/x509 does not hold it against a CA's name
	// constraints. Without it such a certificate fails with
	// [ErrCommonNameOnly], whose message names this option.
	//
	// With it, a client does the verification itself (in VerifyConnection,
	// with InsecureSkipVerify set so that crypto/tls does not refuse the
	// certificate first), so ConnectionState().VerifiedChains stays empty;
	// a VerifyPeerCertificate or VerifyConnection of TLSConfig still runs,
	// after it, with the verified chains. It changes nothing when
	// verification is off (RejectUnauthorized false), and nothing on a
	// server: the name in a client certificate is never compared with
	// anything, by Go or Node, so client certificates with only a Common
	// Name are accepted either way.
	AllowCommonName bool

	// TLSConfig is an escape hatch for any other TLS setting. It is cloned,
	// never modified, and the fields above are applied on top of the clone
	// only where they are set. MinVersion is always raised to at least
	// TLS 1.2; CipherSuites, when nil, becomes the AEAD suites only (see
	// [ServerConfig]); a server's SessionTicketsDisabled is always set.
	TLSConfig *tls.Config
}

// Bool returns a pointer to b, for Options.RejectUnauthorized.
func Bool(b bool) *bool { return &b }

// rejectUnauthorized reports the effective RejectUnauthorized (nil = true).
func (o Options) rejectUnauthorized() bool {
	return o.RejectUnauthorized == nil || *o.RejectUnauthorized
}

// LoadFiles reads PEM files into the Key, Cert and CA of an Options. An empty
// path skips that file. Each file read is checked to hold PEM of the expected
// kind (a private key, certificates); whether key and certificate match is
// checked later, by [ServerConfig] and [ClientConfig]. An encrypted key is
// read as it is: set Options.Passphrase before building a config from it.
// Errors name the file and wrap the underlying error (for example
// fs.ErrNotExist or [ErrBadPEM]).
//
// LoadFiles sets no other field: in particular a server built from its
// Options alone asks no client for a certificate. For a server, use
// [LoadServerFiles], which requires client certificates signed by the CA.
//
// For a PKCS #12 file, read it with os.ReadFile into Options.PFX.
func LoadFiles(keyFile, certFile, caFile string) (Options, error) {
	var o Options
	var err error
	if keyFile != "" {
		if o.Key, err = readPEMFile("key", keyFile); err != nil {
			return Options{}, err
		}
		if err := checkKeyPEM(o.Key); err != nil {
			return Options{}, fmt.Errorf("tlsio: key file %s: %w", keyFile, err)
		}
	}
	if certFile != "" {
		if o.Cert, err = readPEMFile("cert", certFile); err != nil {
			return Options{}, err
		}
		if _, err := parseCerts("cert", o.Cert); err != nil {
			return Options{}, fmt.Errorf("tlsio: cert file %s: %w", certFile, err)
		}
	}
	if caFile != "" {
		if o.CA, err = readPEMFile("ca", caFile); err != nil {
			return Options{}, err
		}
		if _, err := parseCerts("ca", o.CA); err != nil {
			return Options{}, fmt.Errorf("tlsio: ca file %s: %w", caFile, err)
		}
	}
	return o, nil
}

// LoadServerFiles reads a server's PEM files, as [LoadFiles] does, into
// Options that require client certificates signed by the CA: RequestCert
// true, RejectUnauthorized left nil (true). This is mutual TLS, what
// token-server's examples set up with requestCert and ca; it is the short
// path on purpose, since LoadFiles alone makes a server that asks no client
// for a certificate.
//
// Every path is required: an empty caFile is [ErrNoCA], an empty keyFile or
// certFile [ErrIncompleteKeyPair]. For a PKCS #12 file, use LoadFiles("",
// "", caFile), read the archive into Options.PFX and set RequestCert.
func LoadServerFiles(keyFile, certFile, caFile string) (Options, error) {
	switch {
	case caFile == "":
		return Options{}, fmt.Errorf("%w: LoadServerFiles needs the CA file that signs the client certificates", ErrNoCA)
	case keyFile == "" || certFile == "":
		return Options{}, fmt.Errorf("%w: LoadServerFiles needs both the key file and the certificate file", ErrIncompleteKeyPair)
	}
	o, err := LoadFiles(keyFile, certFile, caFile)
	if err != nil {
		return Options{}, err
	}
	o.RequestCert = true
	return o, nil
}

func readPEMFile(what, name string) ([]byte, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		// The *fs.PathError names the file; say which option it was for.
		return nil, fmt.Errorf("tlsio: read %s file: %w", what, err)
	}
	return b, nil
}
