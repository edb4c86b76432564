package tlsio

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"software.sslmate.com/src/go-pkcs12"
)

// PEM block types of private keys.
const (
	pemPKCS8          = "PRIVATE KEY"
	pemPKCS8Encrypted = "ENCRYPTED PRIVATE KEY"
	pemPKCS1          = "RSA PRIVATE KEY"
	pemSEC1           = "EC PRIVATE KEY"
)

// findKeyBlock returns the first private key block of b (PKCS #8, encrypted
// or not, PKCS #1 or SEC 1). Blocks of other types before it are skipped
// (for example EC PARAMETERS, or certificates in a combined file).
func findKeyBlock(b []byte) (*pem.Block, error) {
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return nil, fmt.Errorf("%w: key: no PEM PRIVATE KEY block found", ErrBadPEM)
		}
		switch block.Type {
		case pemPKCS8, pemPKCS8Encrypted, pemPKCS1, pemSEC1:
			return block, nil
		}
	}
}

// legacyEncrypted reports whether block uses the legacy PEM encryption
// (RFC 1421: "Proc-Type: 4,ENCRYPTED" and "DEK-Info" headers), as
// x509.IsEncryptedPEMBlock does, without its deprecation.
func legacyEncrypted(block *pem.Block) bool {
	_, dek := block.Headers["DEK-Info"]
	return dek || strings.Contains(block.Headers["Proc-Type"], "ENCRYPTED")
}

// checkKeyPEM checks that b holds a private key: an unencrypted one must
// parse; an encrypted one is only recognised, since decrypting it needs the
// passphrase.
func checkKeyPEM(b []byte) error {
	block, err := findKeyBlock(b)
	if err != nil {
		return err
	}
	if block.Type == pemPKCS8Encrypted || legacyEncrypted(block) {
		return nil
	}
	_, err = parseKeyDER(block.Type, block.Bytes)
	return err
}

// parseKey parses the first private key block of b, decrypting it with
// passphrase if it is encrypted. It reports whether the key was encrypted.
func parseKey(b []byte, passphrase string) (key crypto.PrivateKey, encrypted bool, err error) {
	block, err := findKeyBlock(b)
	if err != nil {
		return nil, false, err
	}
	switch {
	case block.Type == pemPKCS8Encrypted:
		if passphrase == "" {
			return nil, true, fmt.Errorf("%w: key: the key is encrypted (%s) and Options.Passphrase is empty", ErrBadPassphrase, block.Type)
		}
		der, err := decryptPKCS8(block.Bytes, passphrase)
		if err != nil {
			return nil, true, fmt.Errorf("%w: key: %s: %w", errorKind(err), strings.ToLower(block.Type), err)
		}
		key, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			// The padding happened to be valid, the contents are not.
			return nil, true, fmt.Errorf("%w: key: %s: %w", ErrBadPassphrase, strings.ToLower(block.Type), err)
		}
		return key, true, nil
	case legacyEncrypted(block):
		if passphrase == "" {
			return nil, true, fmt.Errorf("%w: key: the key is encrypted (%s, Proc-Type: 4,ENCRYPTED) and Options.Passphrase is empty", ErrBadPassphrase, block.Type)
		}
		// The legacy PEM encryption is insecure by design (MD5 key
		// derivation, no authentication), which is why crypto/x509
		// deprecated DecryptPEMBlock. Node and openssl still read such
		// keys, and existing deployments have them, so they are read
		// here too; they are never written.
		der, err := x509.DecryptPEMBlock(block, []byte(passphrase)) //lint:ignore SA1019 reading legacy encrypted keys is the point, see above
		if errors.Is(err, x509.IncorrectPasswordError) {
			return nil, true, fmt.Errorf("%w: key: %s: %w", ErrBadPassphrase, strings.ToLower(block.Type), err)
		}
		if err != nil {
			return nil, true, fmt.Errorf("%w: key: %s: %w", ErrBadPEM, strings.ToLower(block.Type), err)
		}
		key, err := parseKeyDERRaw(block.Type, der)
		if err != nil {
			// The padding happened to be valid, the contents are not.
			return nil, true, fmt.Errorf("%w: key: %s: %w", ErrBadPassphrase, strings.ToLower(block.Type), err)
		}
		return key, true, nil
	default:
		key, err := parseKeyDER(block.Type, block.Bytes)
		return key, false, err
	}
}

// parseKeyDER parses an unencrypted private key of the given PEM type.
// Errors wrap ErrBadPEM.
func parseKeyDER(typ string, der []byte) (crypto.PrivateKey, error) {
	key, err := parseKeyDERRaw(typ, der)
	if err != nil {
		return nil, fmt.Errorf("%w: key: %s: %w", ErrBadPEM, strings.ToLower(typ), err)
	}
	return key, nil
}

// parseKeyDERRaw is parseKeyDER with the parser's error as it is.
func parseKeyDERRaw(typ string, der []byte) (crypto.PrivateKey, error) {
	switch typ {
	case pemPKCS8:
		return x509.ParsePKCS8PrivateKey(der)
	case pemPKCS1:
		return x509.ParsePKCS1PrivateKey(der)
	case pemSEC1:
		return x509.ParseECPrivateKey(der)
	default:
		return nil, fmt.Errorf("unsupported type %q", typ)
	}
}

// keyToPEM encodes key as an unencrypted PKCS #8 PEM block, for
// tls.X509KeyPair.
func keyToPEM(key crypto.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("%w: key: %w", ErrBadPEM, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPKCS8, Bytes: der}), nil
}

// pfxKeyPair decodes a PKCS #12 archive into the key pair to present (the
// certificate that belongs to the private key, then the archive's other
// certificates as its chain) and the self-signed certificates of the
// archive, which Node trusts to verify the peer.
func pfxKeyPair(pfx []byte, passphrase string) (tls.Certificate, []*x509.Certificate, error) {
	key, first, others, err := decodePFX(pfx, passphrase)
	if err != nil {
		if errors.Is(err, pkcs12.ErrIncorrectPassword) || errors.Is(err, pkcs12.ErrDecryption) {
			return tls.Certificate{}, nil, fmt.Errorf("%w: pfx: %w", ErrBadPassphrase, err)
		}
		return tls.Certificate{}, nil, fmt.Errorf("%w: %w", ErrBadPFX, err)
	}
	// go-pkcs12 takes the first certificate for the leaf; pick the one
	// that matches the key instead, whatever the order in the archive.
	all := append([]*x509.Certificate{first}, others...)
	signer, ok := key.(crypto.Signer)
	if !ok {
		return tls.Certificate{}, nil, fmt.Errorf("%w: unsupported private key type %T", ErrBadPFX, key)
	}
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok {
		return tls.Certificate{}, nil, fmt.Errorf("%w: unsupported public key type %T", ErrBadPFX, signer.Public())
	}
	leaf := -1
	for i, c := range all {
		if pub.Equal(c.PublicKey) {
			leaf = i
			break
		}
	}
	if leaf < 0 {
		return tls.Certificate{}, nil, fmt.Errorf("%w: pfx: no certificate in the archive belongs to its private key", ErrKeyMismatch)
	}
	var chainPEM []byte
	var roots []*x509.Certificate
	chainPEM = append(chainPEM, certPEM(all[leaf].Raw)...)
	for i, c := range all {
		if i == leaf {
			continue
		}
		chainPEM = append(chainPEM, certPEM(c.Raw)...)
		if selfSigned(c) {
			roots = append(roots, c)
		}
	}
	keyPEM, err := keyToPEM(key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pair, err := tls.X509KeyPair(chainPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("%w: pfx: %w", ErrKeyMismatch, err)
	}
	return pair, roots, nil
}

// decodePFX runs go-pkcs12's decoder, turning a panic on malformed input (a
// third-party parser of untrusted bytes) into an error: building a config
// must never panic.
func decodePFX(pfx []byte, passphrase string) (key any, leaf *x509.Certificate, cas []*x509.Certificate, err error) {
	defer func() {
		if r := recover(); r != nil {
			key, leaf, cas, err = nil, nil, nil, fmt.Errorf("pfx: malformed archive (decoder panicked: %v)", r)
		}
	}()
	return pkcs12.DecodeChain(pfx, passphrase)
}

// selfSigned reports whether c is a self-signed certificate (a root).
func selfSigned(c *x509.Certificate) bool {
	return string(c.RawSubject) == string(c.RawIssuer) && c.CheckSignatureFrom(c) == nil
}
