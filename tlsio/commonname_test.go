package tlsio

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// commonNameCases are host names and Common Names, and whether Node's
// tls.checkServerIdentity accepts a certificate whose only name is that
// Common Name (TestMatchCommonNameAsNode checks them against node).
var commonNameCases = []struct {
	host, cn string
	want     bool
}{
	{"localhost", "localhost", true},
	{"LOCALHOST", "localhost", true},
	{"localhost", "LocalHost", true},
	{"localhost.", "localhost", true},
	{"localhost", "localhost.", true},
	{"www.example.com", "www.example.com", true},
	{"other.example.com", "www.example.com", false},
	{"example.com", "www.example.com", false},
	{"a.example.com", "*.example.com", true},
	{"A.Example.COM", "*.example.com", true},
	{"example.com", "*.example.com", false},
	{"a.b.example.com", "*.example.com", false},
	{"foo.com", "*.com", false},
	{"foobar.example.com", "foo*.example.com", true},
	{"foo.example.com", "f*o.example.com", true},
	{"fo.example.com", "f*o.example.com", true},
	{"f.example.com", "f*o.example.com", false},
	{"bar.example.com", "foo*.example.com", false},
	{"a.example.com", "**.example.com", false},
	{"a.example.com", "a.*.com", false},
	{"xn--a.example.com", "xn--*.example.com", false},
	{"xn--a.example.com", "xn--a.example.com", true},
	{"a.example.com", "a.example.com ", false},
	{"a..com", "a..com", false},
	{"a!b.example.com", "a!b.example.com", true},
	{"a~\x7fb.example.com", "a~\x7fb.example.com", true},
	{"a b.example.com", "a b.example.com", false},
	{"a\tb.example.com", "a\tb.example.com", false},
	{"\u00e9t\u00e9.example.com", "\u00e9t\u00e9.example.com", false},
	{"foo.example.com", "fo*oo.example.com", false},
	{"fooo.example.com", "fo*oo.example.com", true},
	{"localhost", "", false},
	{"127.0.0.1", "127.0.0.1", false},
	{"::1", "::1", false},
	{"127.0.0.1", "localhost", false},
}

// tlsTestCNCert is a certificate whose subject has the given Common Name and
// nothing else.
func tlsTestCNCert(cn string) *x509.Certificate {
	return &x509.Certificate{Subject: pkix.Name{Names: []pkix.AttributeTypeAndValue{{Type: oidCommonName, Value: cn}}}}
}

func TestMatchCommonName(t *testing.T) {
	for _, c := range commonNameCases {
		if got := matchCommonName(c.host, tlsTestCNCert(c.cn)); got != c.want {
			t.Errorf("host %q, CN %q: match %v, want %v", c.host, c.cn, got, c.want)
		}
	}
	// Several Common Names: any of them.
	multi := &x509.Certificate{Subject: pkix.Name{Names: []pkix.AttributeTypeAndValue{
		{Type: oidCommonName, Value: "one.example"}, {Type: oidCommonName, Value: "two.example"},
	}}}
	if !matchCommonName("one.example", multi) || !matchCommonName("two.example", multi) || matchCommonName("three.example", multi) {
		t.Error("several Common Names: want any of them to match")
	}
}

// TestMatchCommonNameAsNode runs the same cases through Node's
// tls.checkServerIdentity, when node is on PATH.
func TestMatchCommonNameAsNode(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skipf("node is not on PATH (%v): the cases are checked against Go's port only", err)
	}
	var hosts [][2]string
	for _, c := range commonNameCases {
		hosts = append(hosts, [2]string{c.host, c.cn})
	}
	in, err := json.Marshal(hosts)
	if err != nil {
		t.Fatal(err)
	}
	script := `const tls = require('tls');
const cases = JSON.parse(process.argv[1]);
process.stdout.write(JSON.stringify(cases.map(([host, cn]) =>
  tls.checkServerIdentity(host, { subject: { CN: cn } }) === undefined)));`
	out, err := exec.Command(node, "-e", script, string(in)).Output()
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	var got []bool
	if err := json.Unmarshal(out, &got); err != nil || len(got) != len(commonNameCases) {
		t.Fatalf("node printed %q (%v)", out, err)
	}
	for i, c := range commonNameCases {
		if got[i] != c.want {
			t.Errorf("host %q, CN %q: node says %v, the table %v", c.host, c.cn, got[i], c.want)
		}
	}
}

// tlsTestCNSetup is a CA, a server certificate for "localhost" in its
// Common Name only, and a client certificate with only a Common Name: what
// token-server's extra/cert-gen.sh makes (with RSA 4096; 2048 here).
type tlsTestCNSetup struct {
	ca             *tlsTestCA
	server, client tlsTestLeaf
}

func newCNSetup(t *testing.T) tlsTestCNSetup {
	ca := tlsTestNewCA(t, "cert-gen CA", true, nil)
	return tlsTestCNSetup{
		ca:     ca,
		server: ca.issue(t, cnOnly("localhost"), true),
		client: ca.issue(t, cnOnly("client"), true),
	}
}

func (s tlsTestCNSetup) serverOptions() Options {
	return Options{Key: s.server.keyPEM, Cert: s.server.certPEM, CA: s.ca.certPEM, RequestCert: true}
}

func (s tlsTestCNSetup) clientOptions(allow bool, serverName string) Options {
	return Options{Key: s.client.keyPEM, Cert: s.client.certPEM, CA: s.ca.certPEM, AllowCommonName: allow, ServerName: serverName}
}

// tlsTestHandshake runs a handshake of a client with copt against a server
// with sopt, and returns the client's error and the server's result.
func tlsTestHandshake(t *testing.T, sopt, copt Options) (tls.ConnectionState, tlsTestServerResult, error) {
	t.Helper()
	addr, res := tlsTestServe(t, tlsTestServerConfig(t, sopt))
	cs, err := tlsTestDialAndRead(t, addr, tlsTestClientConfig(t, copt))
	sr := tlsTestServerResultOf(t, res)
	return cs, sr, err
}

func TestCommonNameOnlyRefusedByDefault(t *testing.T) {
	s := newCNSetup(t)
	if len(s.server.cert.DNSNames) != 0 || len(s.server.cert.IPAddresses) != 0 {
		t.Fatal("the test certificate has subjectAltNames")
	}
	t.Run("by name", func(t *testing.T) {
		_, _, err := tlsTestHandshake(t, s.serverOptions(), s.clientOptions(false, "localhost"))
		if !errors.Is(err, ErrCommonNameOnly) {
			t.Fatalf("err = %v, want ErrCommonNameOnly", err)
		}
		for _, want := range []string{"tlsio.Options.AllowCommonName", "RFC 2818", "legacy Common Name field", `CN="localhost"`} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("err %q does not say %q", err, want)
			}
		}
		var verr *tls.CertificateVerificationError
		var herr x509.HostnameError
		if !errors.As(err, &verr) || !errors.As(err, &herr) || herr.Host != "localhost" {
			t.Errorf("err = %v, want a *tls.CertificateVerificationError and an x509.HostnameError for localhost", err)
		}
	})
	t.Run("by IP address", func(t *testing.T) {
		_, _, err := tlsTestHandshake(t, s.serverOptions(), s.clientOptions(false, ""))
		if !errors.Is(err, ErrCommonNameOnly) || !strings.Contains(err.Error(), "never compared with an IP address") ||
			!strings.Contains(err.Error(), "ServerName") {
			t.Fatalf("err = %v, want ErrCommonNameOnly saying to set ServerName", err)
		}
	})
	t.Run("wrong name", func(t *testing.T) {
		// The option would not help: Go's error as it is.
		_, _, err := tlsTestHandshake(t, s.serverOptions(), s.clientOptions(false, "elsewhere.example"))
		var herr x509.HostnameError
		if errors.Is(err, ErrCommonNameOnly) || !errors.As(err, &herr) {
			t.Fatalf("err = %v, want an x509.HostnameError only", err)
		}
	})
}

func TestAllowCommonName(t *testing.T) {
	s := newCNSetup(t)
	for _, name := range []string{"localhost", "LOCALHOST", "localhost."} {
		t.Run("server name "+name, func(t *testing.T) {
			cs, sr, err := tlsTestHandshake(t, s.serverOptions(), s.clientOptions(true, name))
			if err != nil {
				t.Fatalf("client: %v", err)
			}
			if sr.err != nil {
				t.Fatalf("server: %v", sr.err)
			}
			if len(cs.PeerCertificates) == 0 || !cs.PeerCertificates[0].Equal(s.server.cert) {
				t.Error("client saw another server certificate")
			}
			// The server verified the client certificate (CN only) itself.
			if len(sr.state.VerifiedChains) == 0 || !sr.state.VerifiedChains[0][0].Equal(s.client.cert) {
				t.Error("server: client certificate not verified")
			}
		})
	}
	t.Run("wrong name", func(t *testing.T) {
		_, _, err := tlsTestHandshake(t, s.serverOptions(), s.clientOptions(true, "elsewhere.example"))
		var verr *tls.CertificateVerificationError
		var herr x509.HostnameError
		if errors.Is(err, ErrCommonNameOnly) || !errors.As(err, &verr) || !errors.As(err, &herr) ||
			!strings.Contains(err.Error(), `Common Name "localhost" does not match "elsewhere.example"`) {
			t.Fatalf("err = %v, want a name mismatch", err)
		}
	})
	t.Run("IP address", func(t *testing.T) {
		_, _, err := tlsTestHandshake(t, s.serverOptions(), s.clientOptions(true, ""))
		if !errors.Is(err, ErrCommonNameOnly) || !strings.Contains(err.Error(), "IP address") {
			t.Fatalf("err = %v, want ErrCommonNameOnly about the IP address", err)
		}
	})
	t.Run("other CA", func(t *testing.T) {
		other := tlsTestNewCA(t, "other CA", false, nil)
		copt := s.clientOptions(true, "localhost")
		copt.CA = other.certPEM
		_, _, err := tlsTestHandshake(t, s.serverOptions(), copt)
		var uerr x509.UnknownAuthorityError
		if !errors.As(err, &uerr) {
			t.Fatalf("err = %v, want x509.UnknownAuthorityError", err)
		}
	})
	t.Run("expired", func(t *testing.T) {
		tmpl := cnOnly("localhost")
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour)
		old := s.ca.issue(t, tmpl, false)
		sopt := s.serverOptions()
		sopt.Key, sopt.Cert = old.keyPEM, old.certPEM
		_, _, err := tlsTestHandshake(t, sopt, s.clientOptions(true, "localhost"))
		var cerr x509.CertificateInvalidError
		if !errors.As(err, &cerr) || cerr.Reason != x509.Expired {
			t.Fatalf("err = %v, want x509.CertificateInvalidError (Expired)", err)
		}
	})
	t.Run("TLSConfig.Time", func(t *testing.T) {
		copt := s.clientOptions(true, "localhost")
		copt.TLSConfig = &tls.Config{Time: func() time.Time { return time.Now().AddDate(0, 0, 30) }}
		_, _, err := tlsTestHandshake(t, s.serverOptions(), copt)
		var cerr x509.CertificateInvalidError
		if !errors.As(err, &cerr) || cerr.Reason != x509.Expired {
			t.Fatalf("err = %v, want x509.CertificateInvalidError (Expired) at the config's time", err)
		}
	})
	t.Run("client-auth-only certificate", func(t *testing.T) {
		tmpl := cnOnly("localhost")
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		wrong := s.ca.issue(t, tmpl, false)
		sopt := s.serverOptions()
		sopt.Key, sopt.Cert = wrong.keyPEM, wrong.certPEM
		_, _, err := tlsTestHandshake(t, sopt, s.clientOptions(true, "localhost"))
		var cerr x509.CertificateInvalidError
		if !errors.As(err, &cerr) || cerr.Reason != x509.IncompatibleUsage {
			t.Fatalf("err = %v, want x509.CertificateInvalidError (IncompatibleUsage)", err)
		}
	})
	t.Run("intermediate", func(t *testing.T) {
		inter := tlsTestNewCA(t, "cert-gen intermediate", false, s.ca)
		leaf := inter.issue(t, cnOnly("localhost"), false, inter)
		sopt := s.serverOptions()
		sopt.Key, sopt.Cert = leaf.keyPEM, leaf.certPEM
		if _, sr, err := tlsTestHandshake(t, sopt, s.clientOptions(true, "localhost")); err != nil || sr.err != nil {
			t.Fatalf("with the intermediate sent: client %v, server %v", err, sr.err)
		}
		sopt.Cert = leaf.certPEM[:len(certPEM(leaf.cert.Raw))] // leaf only
		_, _, err := tlsTestHandshake(t, sopt, s.clientOptions(true, "localhost"))
		var uerr x509.UnknownAuthorityError
		if !errors.As(err, &uerr) {
			t.Fatalf("without the intermediate: err = %v, want x509.UnknownAuthorityError", err)
		}
	})
	t.Run("user hooks run after, with the chains", func(t *testing.T) {
		var peerChains, connChains int
		copt := s.clientOptions(true, "localhost")
		hookErr := errors.New("refused by the user's hook")
		copt.TLSConfig = &tls.Config{
			VerifyPeerCertificate: func(raw [][]byte, chains [][]*x509.Certificate) error {
				peerChains = len(chains)
				return nil
			},
			VerifyConnection: func(cs tls.ConnectionState) error {
				connChains = len(cs.VerifiedChains)
				return hookErr
			},
		}
		_, _, err := tlsTestHandshake(t, s.serverOptions(), copt)
		if !errors.Is(err, hookErr) {
			t.Fatalf("err = %v, want the hook's error", err)
		}
		if peerChains == 0 || connChains == 0 {
			t.Errorf("hooks saw %d and %d verified chains, want some", peerChains, connChains)
		}
	})
	t.Run("server side changes nothing", func(t *testing.T) {
		sopt := s.serverOptions()
		sopt.AllowCommonName = true
		cfg := tlsTestServerConfig(t, sopt)
		if cfg.InsecureSkipVerify || cfg.VerifyConnection != nil || cfg.VerifyPeerCertificate != nil || cfg.ClientAuth != tls.RequireAndVerifyClientCert {
			t.Errorf("server config changed by AllowCommonName: %+v", cfg)
		}
	})
	t.Run("verification off", func(t *testing.T) {
		copt := s.clientOptions(true, "localhost")
		copt.RejectUnauthorized = Bool(false)
		tlsTestCaptureLog(t)
		cfg := tlsTestClientConfig(t, copt)
		if !cfg.InsecureSkipVerify || cfg.VerifyConnection != nil {
			t.Error("AllowCommonName installed a verification although RejectUnauthorized is false")
		}
	})
}

// TestAllowCommonNameSANCertificates: a certificate with a DNS or IP
// subjectAltName is checked as without the option.
func TestAllowCommonNameSANCertificates(t *testing.T) {
	d := tlsTestDevCerts(t) // localhost, 127.0.0.1, ::1
	for _, allow := range []bool{false, true} {
		copt := d.ClientOptions()
		copt.AllowCommonName = allow
		// An IP address, checked against the IP SANs (Dial hands the
		// name to the verification, which crypto/tls leaves empty).
		if _, sr, err := tlsTestHandshake(t, d.ServerOptions(), copt); err != nil || sr.err != nil {
			t.Fatalf("allow %v, 127.0.0.1: client %v, server %v", allow, err, sr.err)
		}
		copt.ServerName = "localhost"
		if _, _, err := tlsTestHandshake(t, d.ServerOptions(), copt); err != nil {
			t.Fatalf("allow %v, localhost: %v", allow, err)
		}
		copt.ServerName = "elsewhere.example"
		_, _, err := tlsTestHandshake(t, d.ServerOptions(), copt)
		var herr x509.HostnameError
		if !errors.As(err, &herr) || errors.Is(err, ErrCommonNameOnly) {
			t.Fatalf("allow %v, elsewhere.example: err = %v, want x509.HostnameError", allow, err)
		}
	}

	// A Common Name that would match is ignored when there is a SAN.
	ca := tlsTestNewCA(t, "SAN CA", false, nil)
	tmpl := serverLeaf("other.example")
	tmpl.Subject.CommonName = "localhost"
	leaf := ca.issue(t, tmpl, false)
	for _, allow := range []bool{false, true} {
		_, _, err := tlsTestHandshake(t, Options{Key: leaf.keyPEM, Cert: leaf.certPEM},
			Options{CA: ca.certPEM, ServerName: "localhost", AllowCommonName: allow})
		var herr x509.HostnameError
		if !errors.As(err, &herr) || errors.Is(err, ErrCommonNameOnly) {
			t.Fatalf("allow %v: err = %v, want x509.HostnameError", allow, err)
		}
	}
}

// TestCertGenScript makes certificates the way token-server's
// extra/cert-gen.sh does, with the openssl command (X.509 v1 leaves without
// any extension), and uses them on both sides.
func TestCertGenScript(t *testing.T) {
	openssl := tlsTestOpenSSL(t)
	dir := t.TempDir()
	subj := "/C=FR/ST=./L=./O=ACME Signing Authority Inc/CN="
	// cert-gen.sh uses 4096-bit keys; 2048 keeps the test fast.
	tlsTestRun(t, dir, openssl, "genrsa", "-out", "ca.key", "2048")
	tlsTestRun(t, dir, openssl, "req", "-new", "-x509", "-days", "2", "-key", "ca.key", "-out", "ca.crt", "-subj", subj+".")
	for _, n := range []string{"server", "client"} {
		tlsTestRun(t, dir, openssl, "genrsa", "-out", n+".key", "2048")
		tlsTestRun(t, dir, openssl, "req", "-new", "-key", n+".key", "-out", n+".csr", "-subj", subj+"localhost")
		tlsTestRun(t, dir, openssl, "x509", "-req", "-days", "2", "-in", n+".csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-set_serial", "01", "-out", n+".crt")
	}
	load := func(key, cert string) Options {
		o, err := LoadFiles(filepath.Join(dir, key), filepath.Join(dir, cert), filepath.Join(dir, "ca.crt"))
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	sopt := load("server.key", "server.crt")
	sopt.RequestCert = true
	copt := load("client.key", "client.crt")
	copt.ServerName = "localhost"
	leaf := tlsTestParseCert(t, sopt.Cert)
	if len(leaf.DNSNames) != 0 || len(leaf.IPAddresses) != 0 {
		t.Fatalf("openssl made a certificate with subjectAltNames %v %v", leaf.DNSNames, leaf.IPAddresses)
	}
	t.Logf("openssl made an X.509 v%d certificate with %d extensions", leaf.Version, len(leaf.Extensions))

	_, _, err := tlsTestHandshake(t, sopt, copt)
	if !errors.Is(err, ErrCommonNameOnly) {
		t.Fatalf("without AllowCommonName: err = %v, want ErrCommonNameOnly", err)
	}
	copt.AllowCommonName = true
	if _, sr, err := tlsTestHandshake(t, sopt, copt); err != nil || sr.err != nil {
		t.Fatalf("with AllowCommonName: client %v, server %v", err, sr.err)
	}
}
