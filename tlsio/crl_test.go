package tlsio

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

// tlsTestCRL returns a revocation list in DER, signed by key as the CA
// cert, that revokes serials.
func tlsTestCRL(t testing.TB, cert *x509.Certificate, key crypto.Signer, serials ...*big.Int) []byte {
	t.Helper()
	now := time.Now()
	tmpl := &x509.RevocationList{
		Number:     big.NewInt(now.UnixNano()),
		ThisUpdate: now.Add(-time.Hour),
		NextUpdate: now.Add(24 * time.Hour),
	}
	for _, s := range serials {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{
			SerialNumber: s, RevocationTime: now.Add(-time.Minute), ReasonCode: 1, // keyCompromise
		})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// crl is tlsTestCRL in PEM, revoking the given certificates.
func (ca *tlsTestCA) crl(t *testing.T, revoked ...*x509.Certificate) []byte {
	t.Helper()
	var serials []*big.Int
	for _, c := range revoked {
		serials = append(serials, c.SerialNumber)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemCRL, Bytes: tlsTestCRL(t, ca.cert, ca.key, serials...)})
}

// tlsTestRevokedBy checks that err is a *RevokedError for c.
func tlsTestRevokedBy(t *testing.T, err error, c *x509.Certificate) {
	t.Helper()
	var rerr *RevokedError
	if !errors.Is(err, ErrRevoked) || !errors.As(err, &rerr) || rerr.Serial.Cmp(c.SerialNumber) != 0 {
		t.Fatalf("err = %v, want a *RevokedError (ErrRevoked) for serial %s", err, serialHex(c.SerialNumber))
	}
	for _, want := range []string{"revoked", serialHex(c.SerialNumber)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("err %q does not say %q", err, want)
		}
	}
}

// tlsTestServerErr runs a handshake of a client with copt against a server
// with sopt and returns the server's error (the client's when the server
// has none).
func tlsTestServerErr(t *testing.T, sopt, copt Options) error {
	t.Helper()
	_, sr, err := tlsTestHandshake(t, sopt, copt)
	if sr.err != nil {
		return sr.err
	}
	return err
}

func TestCRLRevokesClient(t *testing.T) {
	ca := tlsTestNewCA(t, "crl CA", false, nil)
	server := ca.issue(t, serverLeaf("localhost"), false)
	revoked := ca.issue(t, clientLeaf("revoked client"), false)
	good := ca.issue(t, clientLeaf("good client"), false)
	client := func(c tlsTestLeaf) Options {
		return Options{Key: c.keyPEM, Cert: c.certPEM, CA: ca.certPEM, ServerName: "localhost"}
	}
	crlPEM := ca.crl(t, revoked.cert)
	block, _ := pem.Decode(crlPEM)
	for name, crl := range map[string][]byte{"PEM": crlPEM, "DER": block.Bytes} {
		t.Run(name, func(t *testing.T) {
			sopt := Options{Key: server.keyPEM, Cert: server.certPEM, CA: ca.certPEM, RequestCert: true, CRL: crl}
			tlsTestRevokedBy(t, tlsTestServerErr(t, sopt, client(revoked)), revoked.cert)
			if err := tlsTestServerErr(t, sopt, client(good)); err != nil {
				t.Fatalf("a client that is not revoked: %v", err)
			}
		})
	}
	t.Run("the user's VerifyConnection runs after", func(t *testing.T) {
		var calls int
		sopt := Options{Key: server.keyPEM, Cert: server.certPEM, CA: ca.certPEM, RequestCert: true, CRL: crlPEM,
			TLSConfig: &tls.Config{VerifyConnection: func(tls.ConnectionState) error { calls++; return nil }}}
		tlsTestRevokedBy(t, tlsTestServerErr(t, sopt, client(revoked)), revoked.cert)
		if err := tlsTestServerErr(t, sopt, client(good)); err != nil || calls != 1 {
			t.Fatalf("err %v, the user's hook ran %d times, want once (for the good client)", err, calls)
		}
	})
}

func TestCRLRevokesServer(t *testing.T) {
	ca := tlsTestNewCA(t, "crl CA", false, nil)
	server := ca.issue(t, serverLeaf("localhost"), false)
	cnServer := ca.issue(t, cnOnly("localhost"), false)
	crl := ca.crl(t, server.cert, cnServer.cert)
	for name, tc := range map[string]struct {
		leaf  tlsTestLeaf
		allow bool
	}{"subjectAltName": {server, false}, "Common Name only": {cnServer, true}} {
		t.Run(name, func(t *testing.T) {
			sopt := Options{Key: tc.leaf.keyPEM, Cert: tc.leaf.certPEM}
			copt := Options{CA: ca.certPEM, ServerName: "localhost", AllowCommonName: tc.allow}
			if _, _, err := tlsTestHandshake(t, sopt, copt); err != nil {
				t.Fatalf("without the list: %v", err)
			}
			copt.CRL = crl
			_, _, err := tlsTestHandshake(t, sopt, copt)
			tlsTestRevokedBy(t, err, tc.leaf.cert)
		})
	}
}

// TestCRLChains: a list applies to the certificates its CA issued, at any
// depth of the chain, and only to those.
func TestCRLChains(t *testing.T) {
	root := tlsTestNewCA(t, "crl root", false, nil)
	inter := tlsTestNewCA(t, "crl intermediate", false, root)
	server := root.issue(t, serverLeaf("localhost"), false)
	leaf := inter.issue(t, clientLeaf("client under the intermediate"), false, inter)
	sopt := Options{Key: server.keyPEM, Cert: server.certPEM, CA: root.certPEM, RequestCert: true}
	copt := Options{Key: leaf.keyPEM, Cert: leaf.certPEM, CA: root.certPEM, ServerName: "localhost"}
	bundle := append(append([]byte(nil), root.certPEM...), inter.certPEM...)

	t.Run("the intermediate's list revokes its leaf", func(t *testing.T) {
		o := sopt
		o.CA, o.CRL = bundle, inter.crl(t, leaf.cert)
		tlsTestRevokedBy(t, tlsTestServerErr(t, o, copt), leaf.cert)
	})
	t.Run("the root's list revokes the intermediate", func(t *testing.T) {
		o := sopt
		o.CRL = root.crl(t, inter.cert)
		err := tlsTestServerErr(t, o, copt)
		tlsTestRevokedBy(t, err, inter.cert)
		var rerr *RevokedError
		if errors.As(err, &rerr); !strings.Contains(rerr.Subject, "crl intermediate") || !strings.Contains(rerr.Issuer, "crl root") {
			t.Errorf("subject %q, issuer %q", rerr.Subject, rerr.Issuer)
		}
	})
	t.Run("the root's list does not revoke the intermediate's leaf of the same serial", func(t *testing.T) {
		o := sopt
		o.CRL = pem.EncodeToMemory(&pem.Block{Type: pemCRL, Bytes: tlsTestCRL(t, root.cert, root.key, leaf.cert.SerialNumber)})
		if err := tlsTestServerErr(t, o, copt); err != nil {
			t.Fatalf("err = %v, want the leaf accepted: its issuer has no list", err)
		}
	})
	t.Run("lists add up", func(t *testing.T) {
		other := root.issue(t, clientLeaf("another client"), false)
		o := sopt
		o.CA = bundle
		o.CRL = append(append(root.crl(t, other.cert), []byte("-----BEGIN COMMENT-----\n-----END COMMENT-----\n")...), inter.crl(t, leaf.cert)...)
		tlsTestRevokedBy(t, tlsTestServerErr(t, o, copt), leaf.cert)
		c := copt
		c.Key, c.Cert = other.keyPEM, other.certPEM
		tlsTestRevokedBy(t, tlsTestServerErr(t, o, c), other.cert)
	})
}

func TestCRLBad(t *testing.T) {
	ca := tlsTestNewCA(t, "crl CA", false, nil)
	other := tlsTestNewCA(t, "another CA", false, nil)
	// A CA of the same name as ca, with another key: its list is forged.
	forger := &tlsTestCA{cert: ca.cert, key: tlsTestKey(t, false)}
	server := ca.issue(t, serverLeaf("localhost"), false)
	good := ca.crl(t)
	for _, tc := range []struct {
		name, want string
		ca, crl    []byte
	}{
		{"garbage DER", "DER", ca.certPEM, []byte("not a list")},
		{"no CRL block", "no PEM", ca.certPEM, ca.certPEM},
		{"bad PEM block", "list 1", ca.certPEM, pem.EncodeToMemory(&pem.Block{Type: pemCRL, Bytes: []byte("x")})},
		{"no CA", "needs Options.CA", nil, good},
		{"another CA's list", "not a certificate of Options.CA", ca.certPEM, other.crl(t)},
		{"forged signature", "not signed by the CA", ca.certPEM, forger.crl(t)},
		{"bad second list after a certificate", "list 2:", ca.certPEM,
			bytes.Join([][]byte{ca.certPEM, good, pem.EncodeToMemory(&pem.Block{Type: pemCRL, Bytes: []byte("x")})}, nil)},
		{"another CA's second list", "list 2 (issuer", ca.certPEM, append(bytes.Clone(good), other.crl(t)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for side, err := range tlsTestBothConfigs(Options{Key: server.keyPEM, Cert: server.certPEM, CA: tc.ca, CRL: tc.crl}) {
				if !errors.Is(err, ErrBadCRL) || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("%s: err = %v, want ErrBadCRL saying %q", side, err, tc.want)
				}
			}
		})
	}
}

func TestSerialHex(t *testing.T) {
	for n, want := range map[int64]string{0: "00", 10: "0A", 255: "FF", 256: "0100", -10: "-0A"} {
		if got := serialHex(big.NewInt(n)); got != want {
			t.Errorf("serialHex(%d) = %q, want %q", n, got, want)
		}
	}
	if serialKey(big.NewInt(5)) == serialKey(big.NewInt(-5)) {
		t.Error("serialKey: 5 and -5 collide")
	}
}

// tlsTestBenchCRL returns server options of fresh development certificates
// with a revocation list of n serial numbers (none of them the client's;
// no list when n is 0), and the client's options.
func tlsTestBenchCRL(b *testing.B, n int) (server, client Options) {
	b.Helper()
	d, err := GenerateDevCerts()
	if err != nil {
		b.Fatal(err)
	}
	server, client = d.ServerOptions(), d.ClientOptions()
	if n == 0 {
		return server, client
	}
	block, _ := pem.Decode(d.CACert)
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		b.Fatal(err)
	}
	key, _, err := parseKey(d.CAKey, "")
	if err != nil {
		b.Fatal(err)
	}
	serials := make([]*big.Int, n)
	for i := range serials {
		serials[i] = new(big.Int).Lsh(big.NewInt(int64(i+1)), 100) // no clash with the random serials of the certificates
	}
	server.CRL = tlsTestCRL(b, ca, key.(crypto.Signer), serials...)
	return server, client
}

// BenchmarkHandshakeCRL is the cost of a full TLS 1.3 handshake with a
// client certificate (both sides, over net.Pipe) without a revocation list
// and with one of 10,000 entries. Compare the two in one run.
func BenchmarkHandshakeCRL(b *testing.B) {
	for _, n := range []int{0, 10_000} {
		b.Run(fmt.Sprintf("crl=%d", n), func(b *testing.B) {
			sopt, copt := tlsTestBenchCRL(b, n)
			scfg, err := ServerConfig(sopt)
			if err != nil {
				b.Fatal(err)
			}
			ccfg, err := ClientConfig(copt)
			if err != nil {
				b.Fatal(err)
			}
			ccfg.ServerName = "localhost"
			b.ResetTimer()
			for b.Loop() {
				cs, cc := net.Pipe()
				errc, done := make(chan error, 1), make(chan struct{})
				go func() {
					defer close(done)
					tc := tls.Server(cs, scfg)
					errc <- tc.Handshake()
					// With TLS 1.3 the server checks the client's
					// certificate after the client's handshake ends:
					// read until the client closes.
					io.Copy(io.Discard, tc)
					tc.Close()
				}()
				tc := tls.Client(cc, ccfg)
				cerr := tc.Handshake()
				serr := <-errc
				tc.Close()
				<-done
				if cerr != nil || serr != nil {
					b.Fatalf("client %v, server %v", cerr, serr)
				}
			}
		})
	}
}

// BenchmarkLoadCRL is the cost of building a server config (what a Reload
// does) without a revocation list and with one of 10,000 entries.
func BenchmarkLoadCRL(b *testing.B) {
	for _, n := range []int{0, 10_000} {
		b.Run(fmt.Sprintf("crl=%d", n), func(b *testing.B) {
			sopt, _ := tlsTestBenchCRL(b, n)
			for b.Loop() {
				if _, err := ServerConfig(sopt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRevocationCheck is what a revocation list of 10,000 entries adds
// to a handshake: the check of a verified chain (leaf and CA) against it.
func BenchmarkRevocationCheck(b *testing.B) {
	sopt, copt := tlsTestBenchCRL(b, 10_000)
	_, rev, err := serverConfig(sopt)
	if err != nil {
		b.Fatal(err)
	}
	var chain []*x509.Certificate
	for _, pemBytes := range [][]byte{copt.Cert, sopt.CA} {
		block, _ := pem.Decode(pemBytes)
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			b.Fatal(err)
		}
		chain = append(chain, c)
	}
	chains := [][]*x509.Certificate{chain}
	if rev.entries != 10_000 {
		b.Fatalf("%d entries", rev.entries)
	}
	for b.Loop() {
		if err := rev.check(chains); err != nil {
			b.Fatal(err)
		}
	}
}
