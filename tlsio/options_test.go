package tlsio

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBool(t *testing.T) {
	if p := Bool(false); p == nil || *p {
		t.Error("Bool(false)")
	}
	if p := Bool(true); p == nil || !*p {
		t.Error("Bool(true)")
	}
	if a, b := Bool(true), Bool(true); a == b {
		t.Error("Bool returns a shared pointer")
	}
	if !(Options{}).rejectUnauthorized() || !(Options{RejectUnauthorized: Bool(true)}).rejectUnauthorized() ||
		(Options{RejectUnauthorized: Bool(false)}).rejectUnauthorized() {
		t.Error("rejectUnauthorized: nil must mean true")
	}
}

// tlsTestDevFiles writes fresh development certificates to a temporary
// directory, and returns them with a function that gives the path of one
// of their files.
func tlsTestDevFiles(t *testing.T) (*DevCerts, func(name string) string) {
	t.Helper()
	d := tlsTestDevCerts(t)
	dir := t.TempDir()
	if err := d.WriteFiles(dir, false); err != nil {
		t.Fatal(err)
	}
	return d, func(name string) string { return filepath.Join(dir, name) }
}

// tlsTestLoadServerFiles calls load on the server files of d (at p), and
// checks that it read them as they are.
func tlsTestLoadServerFiles(t *testing.T, d *DevCerts, p func(string) string, load func(key, cert, ca string) (Options, error)) Options {
	t.Helper()
	o, err := load(p("server.key"), p("server.crt"), p("ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(o.Key, d.ServerKey) || !bytes.Equal(o.Cert, d.ServerCert) || !bytes.Equal(o.CA, d.CACert) {
		t.Error("the files were read with other contents")
	}
	return o
}

func TestLoadFiles(t *testing.T) {
	d, p := tlsTestDevFiles(t)
	o := tlsTestLoadServerFiles(t, d, p, LoadFiles)
	if o.RequestCert || o.RejectUnauthorized != nil || o.TLSConfig != nil || o.ServerName != "" {
		t.Errorf("LoadFiles set more than Key, Cert, CA: %+v", o)
	}

	o, err := LoadFiles("", "", p("ca.crt"))
	if err != nil || o.Key != nil || o.Cert != nil || o.CA == nil {
		t.Errorf("CA only: %+v, %v", o, err)
	}
	if o, err := LoadFiles("", "", ""); err != nil || o.Key != nil || o.Cert != nil || o.CA != nil {
		t.Errorf("no files: %+v, %v", o, err)
	}

	missing := p("missing.key")
	_, err = LoadFiles(missing, p("server.crt"), "")
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "key") {
		t.Errorf("missing file: err = %v, want fs.ErrNotExist naming %s", err, missing)
	}

	junk := p("junk.pem")
	if err := os.WriteFile(junk, []byte("not PEM\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][3]string{
		{junk, "", ""}, {"", junk, ""}, {"", "", junk},
		{p("server.crt"), "", ""}, // a certificate is not a key
		{"", p("server.key"), ""}, // a key is not a certificate
	} {
		_, err := LoadFiles(args[0], args[1], args[2])
		if !errors.Is(err, ErrBadPEM) {
			t.Errorf("LoadFiles%q: err = %v, want ErrBadPEM", args, err)
			continue
		}
		name := args[0] + args[1] + args[2]
		if !strings.Contains(err.Error(), name) {
			t.Errorf("LoadFiles%q: err %q does not name the file", args, err)
		}
	}
}

// TestLoadServerFiles: the options of LoadServerFiles make a server that
// requires a client certificate signed by the CA (issue 31).
func TestLoadServerFiles(t *testing.T) {
	d, p := tlsTestDevFiles(t)
	scfg := tlsTestServerConfig(t, tlsTestLoadServerFiles(t, d, p, LoadServerFiles))

	t.Run("a client without a certificate is refused", func(t *testing.T) {
		addr, res := tlsTestServe(t, scfg)
		_, err := tlsTestDialAndRead(t, addr, tlsTestClientConfig(t, Options{CA: d.CACert}))
		sr := tlsTestServerResultOf(t, res)
		if err == nil || sr.err == nil || !strings.Contains(sr.err.Error(), "client didn't provide a certificate") {
			t.Fatalf("client %v, server %v; want the server to require a certificate", err, sr.err)
		}
	})
	t.Run("a client of another CA is refused", func(t *testing.T) {
		other := tlsTestDevCerts(t)
		copt := other.ClientOptions()
		copt.CA = d.CACert
		cfg := tlsTestClientConfig(t, copt)
		cert := cfg.Certificates[0]
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
		addr, res := tlsTestServe(t, scfg)
		_, err := tlsTestDialAndRead(t, addr, cfg)
		sr := tlsTestServerResultOf(t, res)
		var uerr x509.UnknownAuthorityError
		if err == nil || !errors.As(sr.err, &uerr) {
			t.Fatalf("client %v, server %v; want x509.UnknownAuthorityError on the server", err, sr.err)
		}
	})
	t.Run("a client of the CA is served", func(t *testing.T) {
		addr, res := tlsTestServe(t, scfg)
		if _, err := tlsTestDialAndRead(t, addr, tlsTestClientConfig(t, d.ClientOptions())); err != nil {
			t.Fatal(err)
		}
		if sr := tlsTestServerResultOf(t, res); sr.err != nil || len(sr.state.VerifiedChains) == 0 {
			t.Fatalf("server %v, %d verified chains", sr.err, len(sr.state.VerifiedChains))
		}
	})
	t.Run("every file is required", func(t *testing.T) {
		for _, tc := range []struct {
			key, cert, ca string
			want          error
		}{
			{p("server.key"), p("server.crt"), "", ErrNoCA},
			{"", p("server.crt"), p("ca.crt"), ErrIncompleteKeyPair},
			{p("server.key"), "", p("ca.crt"), ErrIncompleteKeyPair},
			{p("missing.key"), p("server.crt"), p("ca.crt"), fs.ErrNotExist},
		} {
			if _, err := LoadServerFiles(tc.key, tc.cert, tc.ca); !errors.Is(err, tc.want) {
				t.Errorf("LoadServerFiles(%q, %q, %q): err = %v, want %v", tc.key, tc.cert, tc.ca, err, tc.want)
			}
		}
	})
}
