package tlsio

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// Certificate revocation lists (Options.CRL).

// pemCRL is the PEM block type of a certificate revocation list.
const pemCRL = "X509 CRL"

// RevokedError is the error of a handshake (or of [ServerSource.Revoked]) whose
// peer certificate, or one of the CA certificates of its chain, is revoked
// by a list of [Options.CRL]. It matches [ErrRevoked] with errors.Is.
type RevokedError struct {
	// Serial is the serial number of the revoked certificate.
	Serial *big.Int
	// Subject and Issuer name the revoked certificate and the CA that
	// revoked it (RFC 2253 form).
	Subject, Issuer string
	// RevokedAt is the revocation date in the list.
	RevokedAt time.Time
	// Reason is the list's reason code (RFC 5280 5.3.1; 0, unspecified,
	// when it has none).
	Reason int
}

// Error says which certificate was revoked, by whom and when, with its
// serial number in hexadecimal as openssl prints it.
func (e *RevokedError) Error() string {
	return fmt.Sprintf("%v: serial %s (subject %q) revoked by %q on %s, reason %d",
		ErrRevoked, serialHex(e.Serial), e.Subject, e.Issuer, e.RevokedAt.UTC().Format(time.RFC3339), e.Reason)
}

// Is makes a *RevokedError match ErrRevoked.
func (e *RevokedError) Is(target error) bool { return target == ErrRevoked }

// serialHex formats a serial number as openssl does: uppercase hexadecimal,
// an even number of digits.
func serialHex(n *big.Int) string {
	if n == nil {
		return "?"
	}
	s := strings.ToUpper(n.Text(16))
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	if len(s)%2 == 1 {
		s = "0" + s
	}
	if neg {
		s = "-" + s
	}
	return s
}

// revocation is the parsed CRL of an Options: for each CA that signed a
// list, the serial numbers it revoked.
type revocation struct {
	byCA    map[string]map[string]revokedEntry // caKey -> serial -> entry
	entries int                                // serial numbers, over all lists
	next    time.Time                          // earliest NextUpdate, zero when none has one
}

type revokedEntry struct {
	at     time.Time
	reason int
	issuer string
}

// caKey identifies a CA by its name and public key: a list signed by it
// applies to the certificates it issued, whichever copy of the CA
// certificate a chain holds.
func caKey(c *x509.Certificate) string {
	return string(c.RawSubject) + "\x00" + string(c.RawSubjectPublicKeyInfo)
}

// parseCRLs reads the lists of b: PEM ("X509 CRL" blocks, other blocks
// skipped, at least one required) or a single DER list.
func parseCRLs(b []byte) ([]*x509.RevocationList, error) {
	if !bytes.Contains(b, []byte("-----BEGIN")) {
		l, err := x509.ParseRevocationList(b)
		if err != nil {
			return nil, fmt.Errorf("%w: DER: %w", ErrBadCRL, err)
		}
		return []*x509.RevocationList{l}, nil
	}
	var lists []*x509.RevocationList
	for n := 1; ; n++ {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != pemCRL {
			n--
			continue
		}
		l, err := x509.ParseRevocationList(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: list %d: %w", ErrBadCRL, n, err)
		}
		lists = append(lists, l)
	}
	if len(lists) == 0 {
		return nil, fmt.Errorf("%w: no PEM %q block found", ErrBadCRL, pemCRL)
	}
	return lists, nil
}

// newRevocation parses crl and checks that each list is signed by one of
// cas, the certificates of Options.CA. It returns nil when crl is empty.
func newRevocation(crl []byte, cas []*x509.Certificate) (*revocation, error) {
	if len(crl) == 0 {
		return nil, nil
	}
	lists, err := parseCRLs(crl)
	if err != nil {
		return nil, err
	}
	if len(cas) == 0 {
		return nil, fmt.Errorf("%w: a revocation list needs Options.CA, which holds the CA that signed it", ErrBadCRL)
	}
	r := &revocation{byCA: map[string]map[string]revokedEntry{}}
	for i, l := range lists {
		signer, err := crlSigner(l, cas)
		if err != nil {
			return nil, fmt.Errorf("%w: list %d (issuer %q): %w", ErrBadCRL, i+1, l.Issuer.String(), err)
		}
		key := caKey(signer)
		serials := r.byCA[key]
		if serials == nil {
			serials = make(map[string]revokedEntry, len(l.RevokedCertificateEntries))
			r.byCA[key] = serials
		}
		for _, e := range l.RevokedCertificateEntries {
			k := serialKey(e.SerialNumber)
			if _, dup := serials[k]; !dup {
				r.entries++
			}
			serials[k] = revokedEntry{at: e.RevocationTime, reason: e.ReasonCode, issuer: signer.Subject.String()}
		}
		if !l.NextUpdate.IsZero() && (r.next.IsZero() || l.NextUpdate.Before(r.next)) {
			r.next = l.NextUpdate
		}
	}
	return r, nil
}

// serialKey is the map key of a serial number: its sign, then its
// magnitude.
func serialKey(n *big.Int) string {
	if n == nil {
		return ""
	}
	return string(rune('0'+n.Sign()+1)) + string(n.Bytes())
}

// revocationOf returns the revocation lists of o.CRL, checked against the
// certificates of o.CA; nil when o.CRL is empty.
func revocationOf(o Options) (*revocation, error) {
	if len(o.CRL) == 0 {
		return nil, nil
	}
	var cas []*x509.Certificate
	if len(o.CA) > 0 {
		var err error
		if cas, err = parseCerts("ca", o.CA); err != nil {
			return nil, err
		}
	}
	return newRevocation(o.CRL, cas)
}

// verifyConnection returns a VerifyConnection hook that refuses a
// connection whose verified chains r revokes, then runs next (the user's
// hook) if any. It returns next as it is when r is nil.
func (r *revocation) verifyConnection(next func(tls.ConnectionState) error) func(tls.ConnectionState) error {
	if r == nil {
		return next
	}
	return func(cs tls.ConnectionState) error {
		if err := r.check(cs.VerifiedChains); err != nil {
			return err
		}
		if next != nil {
			return next(cs)
		}
		return nil
	}
}

// crlSigner returns the certificate of cas that signed l: one named as its
// issuer whose key verifies its signature.
func crlSigner(l *x509.RevocationList, cas []*x509.Certificate) (*x509.Certificate, error) {
	var sigErr error
	for _, c := range cas {
		if !bytes.Equal(c.RawSubject, l.RawIssuer) {
			continue
		}
		if err := l.CheckSignatureFrom(c); err != nil {
			sigErr = err
			continue
		}
		return c, nil
	}
	if sigErr != nil {
		return nil, fmt.Errorf("not signed by the CA of that name in Options.CA: %w", sigErr)
	}
	return nil, errors.New("its issuer is not a certificate of Options.CA")
}

// check returns a *RevokedError when a verified chain holds a certificate
// that a list signed by the next certificate of the chain (its issuer)
// revokes; nil otherwise. Every chain is checked: a revoked intermediate
// refuses the connection even if another path avoids it.
func (r *revocation) check(chains [][]*x509.Certificate) error {
	if r == nil {
		return nil
	}
	for _, chain := range chains {
		for i := 0; i+1 < len(chain); i++ {
			serials := r.byCA[caKey(chain[i+1])]
			if serials == nil {
				continue
			}
			c := chain[i]
			if e, ok := serials[serialKey(c.SerialNumber)]; ok {
				return &RevokedError{Serial: c.SerialNumber, Subject: c.Subject.String(), Issuer: e.issuer, RevokedAt: e.at, Reason: e.reason}
			}
		}
	}
	return nil
}
