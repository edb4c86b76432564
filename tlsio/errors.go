package tlsio

import "errors"

// Errors returned while building a *tls.Config from [Options], loading PEM
// files, listening or running a handshake. They are wrapped with more detail
// (which input, which file, the underlying error); match them with
// errors.Is.
var (
	// ErrBadPEM means a key, certificate or CA input could not be parsed:
	// no PEM block of the expected type, a block whose contents do not parse,
	// or an encrypted private key whose encryption is malformed or not
	// supported. The wrapping error says which input ("key", "cert" or "ca")
	// was at fault.
	ErrBadPEM = errors.New("tlsio: bad PEM")

	// ErrKeyMismatch means the private key does not belong to the
	// certificate. The error from tls.X509KeyPair is wrapped as well.
	ErrKeyMismatch = errors.New("tlsio: private key does not match certificate")

	// ErrIncompleteKeyPair means only one of Options.Key and Options.Cert
	// was given. Both are needed to present a certificate.
	ErrIncompleteKeyPair = errors.New("tlsio: key and cert must be given together")

	// ErrNoCA means a server was asked to require and verify client
	// certificates (RequestCert with RejectUnauthorized true) but has no CA
	// to verify them against: neither Options.CA nor TLSConfig.ClientCAs,
	// and no system root store to fall back on (x509.SystemCertPool fails
	// or is empty).
	ErrNoCA = errors.New("tlsio: client certificates required but no CA to verify them against")

	// ErrNoCertificate means a server configuration has no certificate to
	// present: no Options.Key/Cert, and the TLSConfig escape hatch provides
	// neither Certificates, GetCertificate nor GetConfigForClient.
	ErrNoCertificate = errors.New("tlsio: server has no certificate")

	// ErrHandshakeTimeout means a TLS handshake did not complete within its
	// timeout. See [Handshake].
	ErrHandshakeTimeout = errors.New("tlsio: TLS handshake timed out")

	// ErrBadPassphrase means an encrypted private key or PFX could not be
	// decrypted: Options.Passphrase is wrong, or empty while the key is
	// encrypted. ServerConfig and ClientConfig return it; the wrapping error
	// says which input ("key" or "pfx") it was. A corrupted encrypted key
	// can look the same, since decryption cannot tell the two apart.
	ErrBadPassphrase = errors.New("tlsio: wrong or missing passphrase")

	// ErrBadPFX means Options.PFX is not a PKCS #12 archive that can be
	// read: malformed, an unsupported algorithm, or without exactly one
	// private key and its certificate.
	ErrBadPFX = errors.New("tlsio: bad PFX (PKCS #12)")

	// ErrPFXWithKeyPair means Options.PFX was given together with
	// Options.Key or Options.Cert. They are alternatives: give one.
	ErrPFXWithKeyPair = errors.New("tlsio: PFX and Key/Cert given together")

	// ErrCommonNameOnly means a client refused the server's certificate
	// because it names its host only in the legacy Common Name field (CN)
	// and has no DNS or IP subjectAltName, as certificates made by
	// token-server's extra/cert-gen.sh do. The error wraps the
	// *tls.CertificateVerificationError and x509.HostnameError of the
	// verification and says what to do: set Options.AllowCommonName, dial by
	// host name rather than IP address, or reissue the certificate with a
	// subjectAltName. See [Options.AllowCommonName].
	ErrCommonNameOnly = errors.New("tlsio: the server certificate names its host only in the legacy Common Name field")

	// ErrBadCRL means Options.CRL could not be used: not a certificate
	// revocation list (PEM "X509 CRL" blocks or one DER list), or a list
	// that no certificate of Options.CA signed (a list is trusted only from
	// the CA whose certificates it revokes, so its issuer must be in CA,
	// intermediates included).
	ErrBadCRL = errors.New("tlsio: bad certificate revocation list")

	// ErrRevoked means a peer certificate, or a CA certificate of its chain,
	// is revoked by a list of Options.CRL. The error is a *[RevokedError],
	// which says which certificate (serial number, subject), by which CA
	// and when.
	ErrRevoked = errors.New("tlsio: certificate revoked")

	// ErrAddressInUse means a listener could not be opened because its
	// address is taken: a TCP port in use, or a Unix socket path on which a
	// server answers or that is not a socket. It is wrapped together with
	// syscall.EADDRINUSE, so either matches with errors.Is.
	ErrAddressInUse = errors.New("tlsio: address in use")
)
