package tlsio

import (
	"crypto/x509"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// tlsTestConstrainedCA makes a CA (an intermediate under parent, or a root
// when parent is nil) with the given permitted and excluded DNS name
// constraints.
func tlsTestConstrainedCA(t *testing.T, name string, parent *tlsTestCA, permitted, excluded []string) *tlsTestCA {
	t.Helper()
	tmpl := tlsTestCATemplate(name)
	tmpl.PermittedDNSDomains, tmpl.ExcludedDNSDomains = permitted, excluded
	return tlsTestCAFrom(t, tmpl, false, parent)
}

// tlsTestOpenSSLVerify runs `openssl verify` on leaf (its PEM holds the
// intermediates after it) against root, and reports whether it accepts it,
// with its output.
func tlsTestOpenSSLVerify(t *testing.T, openssl string, root *tlsTestCA, leaf tlsTestLeaf) (bool, string) {
	t.Helper()
	dir := t.TempDir()
	for name, b := range map[string][]byte{"root.pem": root.certPEM, "chain.pem": leaf.certPEM, "leaf.pem": certPEM(leaf.cert.Raw)} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(openssl, "verify", "-CAfile", "root.pem", "-untrusted", "chain.pem", "leaf.pem")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("openssl verify: %v\n%s", err, out)
	}
	return err == nil, strings.TrimSpace(string(out))
}

// TestAllowCommonNameNameConstraints: a server certificate accepted on its
// Common Name must stay within the DNS name constraints of every CA of its
// chain, as openssl verify requires (issue 30).
func TestAllowCommonNameNameConstraints(t *testing.T) {
	root := tlsTestNewCA(t, "constraints root", false, nil)
	permitted := tlsTestConstrainedCA(t, "permits allowed.test", root, []string{"allowed.test"}, nil)
	subdomains := tlsTestConstrainedCA(t, "permits .allowed.test", root, []string{".allowed.test"}, nil)
	excludingRoot := tlsTestConstrainedCA(t, "excludes example.test", nil, nil, []string{"example.test"})
	excludingInter := tlsTestNewCA(t, "under a root that excludes example.test", false, excludingRoot)
	_, haveOpenSSL := exec.LookPath("openssl")

	for _, tc := range []struct {
		name   string
		root   *tlsTestCA
		issuer *tlsTestCA
		cn     string
		host   string // the server name when it is not cn
		ok     bool
	}{
		{"outside permitted", root, permitted, "victim.example.test", "", false},
		{"inside permitted", root, permitted, "host.allowed.test", "", true},
		{"the permitted name itself", root, permitted, "allowed.test", "", true},
		{"case does not matter", root, permitted, "Host.Allowed.TEST", "host.allowed.test", true},
		{"a suffix that is not a subdomain", root, permitted, "notallowed.test", "", false},
		{"single label outside permitted", root, permitted, "localhost", "", false},
		{"wildcard inside permitted", root, permitted, "*.allowed.test", "a.allowed.test", true},
		{"wildcard outside permitted", root, permitted, "*.example.test", "victim.example.test", false},
		{"leading dot: subdomain", root, subdomains, "host.allowed.test", "", true},
		{"leading dot: the name itself", root, subdomains, "allowed.test", "", false},
		{"excluded by the root", excludingRoot, excludingInter, "victim.example.test", "", false},
		{"not excluded by the root", excludingRoot, excludingInter, "host.allowed.test", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leaf := tc.issuer.issue(t, cnOnly(tc.cn), false, tc.issuer)
			sopt := Options{Key: leaf.keyPEM, Cert: leaf.certPEM}
			host := tc.host
			if host == "" {
				host = tc.cn
			}
			copt := Options{CA: tc.root.certPEM, ServerName: host, AllowCommonName: true}
			_, sr, err := tlsTestHandshake(t, sopt, copt)
			if tc.ok {
				if err != nil || sr.err != nil {
					t.Fatalf("client %v, server %v; want a connection", err, sr.err)
				}
			} else {
				var cerr x509.CertificateInvalidError
				if !errors.As(err, &cerr) || cerr.Reason != x509.CANotAuthorizedForThisName ||
					!strings.Contains(err.Error(), host) {
					t.Fatalf("err = %v, want x509.CertificateInvalidError (CANotAuthorizedForThisName) naming %q", err, host)
				}
			}
			// openssl checks a Common Name against name constraints only
			// when it looks like a host name with a dot (cn2dnsid); tlsio
			// checks the host name the Common Name was accepted for,
			// whatever its form.
			if haveOpenSSL == nil && strings.Contains(tc.cn, ".") && !strings.Contains(tc.cn, "*") {
				ok, out := tlsTestOpenSSLVerify(t, tlsTestOpenSSL(t), tc.root, leaf)
				t.Logf("openssl verify: %s", out)
				if ok != tc.ok {
					t.Errorf("openssl verify accepts: %v, tlsio: %v (%s)", ok, tc.ok, out)
				}
			}
		})
	}
}
