package cluster

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
)

// ErrNoIdentity: the connection has no verified client certificate, so it
// has no grain. The front node closes such a connection.
var ErrNoIdentity = errors.New("cluster: no verified client certificate")

// IdentityFunc gives the grain identity of a connection from its TLS state,
// whose handshake is complete (PeerCertificates[0] is the client's leaf, and
// VerifiedChains is set when the server verified it).
type IdentityFunc func(state tls.ConnectionState) (string, error)

// DefaultIdentity is the hex SHA-256 of the client leaf certificate's
// SubjectPublicKeyInfo: the same key gives the same grain, whatever
// certificate carries it. It needs a verified chain (RequestCert with
// RejectUnauthorized, the default when the server requests certificates).
func DefaultIdentity(state tls.ConnectionState) (string, error) {
	if len(state.VerifiedChains) == 0 || len(state.PeerCertificates) == 0 {
		return "", ErrNoIdentity
	}
	sum := sha256.Sum256(state.PeerCertificates[0].RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:]), nil
}

// SubjectIdentity uses the verified client certificate's subject (its
// distinguished name) as the identity: for a CA that guarantees subjects
// unique.
func SubjectIdentity(state tls.ConnectionState) (string, error) {
	if len(state.VerifiedChains) == 0 || len(state.PeerCertificates) == 0 {
		return "", ErrNoIdentity
	}
	s := state.PeerCertificates[0].Subject.String()
	if s == "" {
		return "", fmt.Errorf("%w: empty subject", ErrNoIdentity)
	}
	return s, nil
}
