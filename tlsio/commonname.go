package tlsio

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Certificates without subjectAltName (Options.AllowCommonName).

// oidCommonName is the attribute type of the subject's Common Name.
var oidCommonName = asn1.ObjectIdentifier{2, 5, 4, 3}

// hasNameSAN reports whether c has a DNS or IP subjectAltName: then only
// those name it, and its Common Name is never looked at.
func hasNameSAN(c *x509.Certificate) bool {
	return len(c.DNSNames) > 0 || len(c.IPAddresses) > 0
}

// commonNames returns every Common Name attribute of c's subject, in order
// (Node compares each of them; pkix.Name keeps only one).
func commonNames(c *x509.Certificate) []string {
	var cns []string
	for _, atv := range c.Subject.Names {
		if s, ok := atv.Value.(string); ok && atv.Type.Equal(oidCommonName) {
			cns = append(cns, s)
		}
	}
	return cns
}

// hostIsIP reports whether host is an IP address (possibly in brackets).
func hostIsIP(host string) bool {
	return net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")) != nil
}

// matchCommonName reports whether host matches one of the Common Names of c
// the way Node's tls.checkServerIdentity matches a certificate without DNS
// subjectAltName (lib/tls.js of Node 20, check()). An IP address never
// matches.
func matchCommonName(host string, c *x509.Certificate) bool {
	if hostIsIP(host) {
		return false
	}
	for _, cn := range commonNames(c) {
		if matchHostPattern(host, cn) {
			return true
		}
	}
	return false
}

// matchHostPattern is Node's check(hostParts, pattern, wildcards=true):
//   - both lowercased and a trailing dot removed, the same number of labels;
//   - a pattern with an empty label, or a byte outside 0x21-0x7F, matches
//     nothing;
//   - all labels but the first equal;
//   - the first label equal, or, when it holds exactly one '*' (not in an
//     "xn--" label) and the pattern has at least three labels, the host's
//     first label starts with what precedes the '*' and ends with what
//     follows it ("*.example.com", "f*o.example.com").
//
// Unlike Node, a host with an empty first label matches no wildcard.
func matchHostPattern(host, pattern string) bool {
	if pattern == "" {
		return false
	}
	hostParts := splitHost(host)
	patternParts := splitHost(pattern)
	if len(hostParts) != len(patternParts) {
		return false
	}
	for _, p := range patternParts {
		if p == "" {
			return false
		}
		for i := 0; i < len(p); i++ {
			if p[i] < 0x21 || p[i] > 0x7f {
				return false
			}
		}
	}
	for i := len(hostParts) - 1; i > 0; i-- {
		if hostParts[i] != patternParts[i] {
			return false
		}
	}
	hostSub, patternSub := hostParts[0], patternParts[0]
	pieces := strings.Split(patternSub, "*")
	if len(pieces) == 1 || strings.Contains(patternSub, "xn--") {
		return hostSub == patternSub
	}
	if len(pieces) > 2 || len(patternParts) <= 2 || hostSub == "" {
		return false
	}
	prefix, suffix := pieces[0], pieces[1]
	return len(prefix)+len(suffix) <= len(hostSub) &&
		strings.HasPrefix(hostSub, prefix) && strings.HasSuffix(hostSub, suffix)
}

// splitHost lowercases host, drops one trailing dot and splits it into
// labels, as Node's splitHost.
func splitHost(host string) []string {
	return strings.Split(strings.ToLower(strings.TrimSuffix(host, ".")), ".")
}

// whyCommonNameOff says why Go, and tlsio by default, refuse a host name that
// is only in the Common Name.
const whyCommonNameOff = "Go checks host names only in subjectAltName, so such a certificate is refused by default " +
	"(a host name in the Common Name has been deprecated since RFC 2818, and a CA's name constraints do not apply to it)"

// explainCommonName wraps a handshake error of a client that refused a
// server certificate without DNS or IP subjectAltName because of its name:
// the result also matches ErrCommonNameOnly and says what to do. Any other
// error is returned as it is.
func explainCommonName(err error) error {
	var herr x509.HostnameError
	if !errors.As(err, &herr) || herr.Certificate == nil {
		return err
	}
	c := herr.Certificate
	cns := commonNames(c)
	if hasNameSAN(c) || len(cns) == 0 {
		return err
	}
	if hostIsIP(herr.Host) {
		return fmt.Errorf("%w (CN=%q, no subjectAltName), and a Common Name is never compared with an IP address such as %s (nor by Node): "+
			"set tlsio.Options.ServerName to the certificate's name and tlsio.Options.AllowCommonName to true, or reissue the certificate with a subjectAltName: %w",
			ErrCommonNameOnly, cns[len(cns)-1], herr.Host, err)
	}
	if !matchCommonName(herr.Host, c) {
		return err // the option would not help: the name is wrong
	}
	return fmt.Errorf("%w (CN=%q, no subjectAltName): %s; set tlsio.Options.AllowCommonName to accept it as Node's token-server does "+
		"(the chain is still verified), or reissue the certificate with a subjectAltName: %w",
		ErrCommonNameOnly, cns[len(cns)-1], whyCommonNameOff, err)
}

// serverVerifier verifies a server certificate for a client with
// Options.AllowCommonName: what crypto/tls does (the chain against the roots,
// with the peer's intermediates, the server-auth key usage and the time, then
// the name), except that a certificate without DNS or IP subjectAltName is
// matched on its Common Name. It runs as VerifyConnection with
// InsecureSkipVerify set.
type serverVerifier struct {
	roots      *x509.CertPool   // nil: the system roots
	now        func() time.Time // nil: time.Now
	serverName string           // the config's ServerName, when the state has none
	revoked    *revocation      // the lists of Options.CRL, nil when none
	// The hooks of the user's config, called after a successful
	// verification, with the verified chains.
	verifyPeer func([][]byte, [][]*x509.Certificate) error
	verifyConn func(tls.ConnectionState) error
}

func (v *serverVerifier) verify(cs tls.ConnectionState) error {
	certs := cs.PeerCertificates
	if len(certs) == 0 {
		return errors.New("tlsio: the server sent no certificate")
	}
	now := time.Now
	if v.now != nil {
		now = v.now
	}
	opts := x509.VerifyOptions{
		Roots:         v.roots,
		CurrentTime:   now(),
		Intermediates: x509.NewCertPool(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, c := range certs[1:] {
		opts.Intermediates.AddCert(c)
	}
	chains, err := certs[0].Verify(opts)
	if err != nil {
		return &tls.CertificateVerificationError{UnverifiedCertificates: certs, Err: err}
	}
	name := cs.ServerName
	if name == "" {
		name = v.serverName
	}
	if err := verifyServerName(certs[0], name); err != nil {
		return &tls.CertificateVerificationError{UnverifiedCertificates: certs, Err: err}
	}
	if !hasNameSAN(certs[0]) {
		// Accepted on its Common Name, which x509 verification never
		// held against the CAs' name constraints: do it here.
		if chains, err = constrainedChains(chains, name); err != nil {
			return &tls.CertificateVerificationError{UnverifiedCertificates: certs, Err: err}
		}
	}
	if err := v.revoked.check(chains); err != nil {
		return err
	}
	if v.verifyPeer != nil {
		raw := make([][]byte, len(certs))
		for i, c := range certs {
			raw[i] = c.Raw
		}
		if err := v.verifyPeer(raw, chains); err != nil {
			return err
		}
	}
	if v.verifyConn != nil {
		cs.VerifiedChains = chains
		return v.verifyConn(cs)
	}
	return nil
}

// verifyServerName checks that leaf is valid for name: with Go's own check
// when it has a DNS or IP subjectAltName, and on its Common Name, as Node
// does, when it has none.
func verifyServerName(leaf *x509.Certificate, name string) error {
	if name == "" {
		return errors.New("tlsio: no server name to verify the certificate against: set Options.ServerName")
	}
	if hasNameSAN(leaf) {
		return leaf.VerifyHostname(name)
	}
	if matchCommonName(name, leaf) {
		return nil
	}
	herr := x509.HostnameError{Certificate: leaf, Host: name}
	cns := commonNames(leaf)
	switch {
	case len(cns) == 0:
		return fmt.Errorf("tlsio: the certificate has neither a subjectAltName nor a Common Name: %w", herr)
	case hostIsIP(name):
		return fmt.Errorf("%w (CN=%q, no subjectAltName), and a Common Name is never compared with an IP address such as %s (nor by Node): "+
			"set tlsio.Options.ServerName to the certificate's name: %w", ErrCommonNameOnly, cns[len(cns)-1], name, herr)
	default:
		return fmt.Errorf("tlsio: the certificate's Common Name %q does not match %q (and it has no subjectAltName): %w", cns[len(cns)-1], name, herr)
	}
}

// constrainedChains returns the chains (each from the leaf to its root) in
// which every CA permits host, the name a certificate without DNS or IP
// subjectAltName was accepted for on its Common Name, under its DNS name
// constraints: within one of its permitted subtrees, when it has any, and
// within none of its excluded ones. It fails with an
// x509.CertificateInvalidError (CANotAuthorizedForThisName) when no chain
// is left.
//
// This is what openssl verify does for such a certificate (it checks the
// Common Name as a DNS name against the constraints of each CA of the chain),
// with two differences: the name checked is the host the Common Name matched
// (the name the certificate is trusted for, after the wildcard of a Common
// Name is resolved), and it is checked whatever its form, where openssl
// skips a Common Name without a dot, so that "localhost" under a CA that
// permits only "example.com" is refused here and accepted by openssl.
func constrainedChains(chains [][]*x509.Certificate, host string) ([][]*x509.Certificate, error) {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	var kept [][]*x509.Certificate
	var refusedBy *x509.Certificate
	for _, chain := range chains {
		ok := true
		for _, ca := range chain[1:] {
			if !dnsPermitted(ca, host) {
				ok, refusedBy = false, ca
				break
			}
		}
		if ok {
			kept = append(kept, chain)
		}
	}
	if len(kept) == 0 {
		return nil, x509.CertificateInvalidError{
			Cert:   refusedBy,
			Reason: x509.CANotAuthorizedForThisName,
			Detail: fmt.Sprintf("the Common Name accepted for %q is outside the DNS name constraints of %q", host, refusedBy.Subject.CommonName),
		}
	}
	return kept, nil
}

// dnsPermitted reports whether the DNS name constraints of ca allow host
// (lowercase, without a trailing dot).
func dnsPermitted(ca *x509.Certificate, host string) bool {
	for _, c := range ca.ExcludedDNSDomains {
		if withinDNSConstraint(host, c) {
			return false
		}
	}
	if len(ca.PermittedDNSDomains) == 0 {
		return true
	}
	for _, c := range ca.PermittedDNSDomains {
		if withinDNSConstraint(host, c) {
			return true
		}
	}
	return false
}

// withinDNSConstraint reports whether host lies in the subtree of the DNS
// name constraint c (RFC 5280 4.2.1.10), as crypto/x509 and openssl match
// them: "example.com" holds itself and its subdomains, ".example.com" only
// its subdomains, "" every name. Case does not matter.
func withinDNSConstraint(host, c string) bool {
	c = strings.ToLower(c)
	switch {
	case c == "":
		return true
	case c[0] == '.':
		return len(host) > len(c) && strings.HasSuffix(host, c)
	default:
		return host == c || strings.HasSuffix(host, "."+c)
	}
}
