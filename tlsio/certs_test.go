package tlsio

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os/exec"
	"testing"
	"time"
)

// Certificates of any shape for the tests: CN only, intermediates, RSA,
// expired, with chosen key usages.

// tlsTestCA is a certificate authority of the tests.
type tlsTestCA struct {
	cert    *x509.Certificate
	key     crypto.Signer
	certPEM []byte
}

// tlsTestKey returns a fresh key: RSA 2048 when rsaKey, else ECDSA P-256.
func tlsTestKey(t testing.TB, rsaKey bool) crypto.Signer {
	t.Helper()
	var k crypto.Signer
	var err error
	if rsaKey {
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// tlsTestSign signs tmpl with parent's key (tmpl itself when parent is nil)
// and returns the parsed certificate.
func tlsTestSign(t *testing.T, tmpl *x509.Certificate, pub crypto.PublicKey, parent *tlsTestCA, self crypto.Signer) *x509.Certificate {
	t.Helper()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = serial
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = time.Now().Add(-time.Hour)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	}
	issuer, signer := tmpl, self
	if parent != nil {
		issuer, signer = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// tlsTestNewCA makes a root CA (parent nil) or an intermediate CA.
func tlsTestNewCA(t *testing.T, name string, rsaKey bool, parent *tlsTestCA) *tlsTestCA {
	t.Helper()
	return tlsTestCAFrom(t, tlsTestCATemplate(name), rsaKey, parent)
}

// tlsTestCATemplate is the template of a CA certificate named name.
func tlsTestCATemplate(name string) *x509.Certificate {
	return &x509.Certificate{
		Subject:               pkix.Name{CommonName: name, Organization: []string{"tlsio tests"}},
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
}

// tlsTestCAFrom makes a CA from tmpl, signed by parent (self-signed when
// parent is nil).
func tlsTestCAFrom(t *testing.T, tmpl *x509.Certificate, rsaKey bool, parent *tlsTestCA) *tlsTestCA {
	t.Helper()
	key := tlsTestKey(t, rsaKey)
	c := tlsTestSign(t, tmpl, key.Public(), parent, key)
	return &tlsTestCA{cert: c, key: key, certPEM: certPEM(c.Raw)}
}

// tlsTestLeaf is a leaf certificate with its key, as PEM.
type tlsTestLeaf struct {
	cert    *x509.Certificate
	key     crypto.Signer
	certPEM []byte // the leaf, then chain (if any)
	keyPEM  []byte // PKCS #8
}

// issue signs tmpl for a fresh key; chain is appended to the certificate PEM.
func (ca *tlsTestCA) issue(t *testing.T, tmpl *x509.Certificate, rsaKey bool, chain ...*tlsTestCA) tlsTestLeaf {
	t.Helper()
	key := tlsTestKey(t, rsaKey)
	c := tlsTestSign(t, tmpl, key.Public(), ca, nil)
	kp, err := keyToPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	cp := certPEM(c.Raw)
	for _, ic := range chain {
		cp = append(cp, ic.certPEM...)
	}
	return tlsTestLeaf{cert: c, key: key, certPEM: cp, keyPEM: kp}
}

// cnOnly returns a template like the certificates of token-server's
// extra/cert-gen.sh: a subject with only a Common Name (and the country,
// organisation, ... that name no host), no subjectAltName and no key usage.
// cert-gen.sh makes RSA 4096 keys; the tests use 2048 bits to stay fast.
func cnOnly(cn string) *x509.Certificate {
	return &x509.Certificate{Subject: pkix.Name{
		Country:      []string{"FR"},
		Organization: []string{"ACME Signing Authority Inc"},
		CommonName:   cn,
	}}
}

// serverLeaf and clientLeaf return templates with a DNS name.
func serverLeaf(dns ...string) *x509.Certificate {
	return &x509.Certificate{
		Subject:     pkix.Name{CommonName: "tlsio test server"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    dns,
	}
}

func clientLeaf(cn string) *x509.Certificate {
	return &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
}

// tlsTestOpenSSL returns the path of the openssl command, or skips the
// (sub)test, saying so, when it is absent.
func tlsTestOpenSSL(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("openssl")
	if err != nil {
		t.Skipf("openssl is not on PATH (%v): this case needs keys made by the openssl command", err)
	}
	return p
}

// tlsTestRun runs a command and fails the test with its output on error.
func tlsTestRun(t *testing.T, dir, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, out)
	}
	return out
}

// pemTypes lists the types of the PEM blocks of b.
func pemTypes(b []byte) []string {
	var types []string
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return types
		}
		types = append(types, block.Type)
	}
}
