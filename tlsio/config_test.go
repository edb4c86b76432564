package tlsio

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

func TestConfigBadPEM(t *testing.T) {
	d := tlsTestDevCerts(t)
	garbageCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not DER")})
	garbageKey := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("not DER")})
	encryptedKey := pem.EncodeToMemory(&pem.Block{
		Type:    "EC PRIVATE KEY",
		Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00"},
		Bytes:   []byte("x"),
	})
	for _, tc := range []struct {
		name, which string
		o           Options
	}{
		{"key not PEM", "key", Options{Key: []byte("hello"), Cert: d.ServerCert}},
		{"key is a certificate", "key", Options{Key: d.ServerCert, Cert: d.ServerCert}},
		{"key block not DER", "key", Options{Key: garbageKey, Cert: d.ServerCert}},
		{"key encrypted, malformed DEK-Info", "key", Options{Key: encryptedKey, Cert: d.ServerCert, Passphrase: "secret"}},
		{"cert not PEM", "cert", Options{Key: d.ServerKey, Cert: []byte("hello")}},
		{"cert is a key", "cert", Options{Key: d.ServerKey, Cert: d.ServerKey}},
		{"cert block not DER", "cert", Options{Key: d.ServerKey, Cert: garbageCert}},
		{"ca not PEM", "ca", Options{Key: d.ServerKey, Cert: d.ServerCert, CA: []byte("hello")}},
		{"ca second block not DER", "ca: certificate 2", Options{Key: d.ServerKey, Cert: d.ServerCert, CA: append(bytes.Clone(d.CACert), garbageCert...)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for side, build := range map[string]func(Options) (*tls.Config, error){"server": ServerConfig, "client": ClientConfig} {
				cfg, err := build(tc.o)
				if !errors.Is(err, ErrBadPEM) {
					t.Fatalf("%s: err = %v, want ErrBadPEM", side, err)
				}
				if cfg != nil {
					t.Errorf("%s: config returned with error", side)
				}
				if !strings.Contains(err.Error(), ": "+tc.which+":") {
					t.Errorf("%s: err %q does not say %q", side, err, tc.which)
				}
			}
		})
	}
}

func TestConfigKeyMismatch(t *testing.T) {
	d := tlsTestDevCerts(t)
	for side, build := range map[string]func(Options) (*tls.Config, error){"server": ServerConfig, "client": ClientConfig} {
		_, err := build(Options{Key: d.ClientKey, Cert: d.ServerCert, CA: d.CACert})
		if !errors.Is(err, ErrKeyMismatch) || errors.Is(err, ErrBadPEM) {
			t.Errorf("%s: err = %v, want ErrKeyMismatch only", side, err)
		} else if u, ok := err.(interface{ Unwrap() []error }); !ok || len(u.Unwrap()) != 2 || !strings.Contains(err.Error(), "tls: private key") {
			t.Errorf("%s: err = %v, want the tls.X509KeyPair error wrapped", side, err)
		}
	}
}

func TestConfigIncompleteKeyPair(t *testing.T) {
	d := tlsTestDevCerts(t)
	for _, o := range []Options{{Key: d.ServerKey}, {Cert: d.ServerCert}} {
		if _, err := ServerConfig(o); !errors.Is(err, ErrIncompleteKeyPair) {
			t.Errorf("ServerConfig: err = %v, want ErrIncompleteKeyPair", err)
		}
		if _, err := ClientConfig(o); !errors.Is(err, ErrIncompleteKeyPair) {
			t.Errorf("ClientConfig: err = %v, want ErrIncompleteKeyPair", err)
		}
	}
}

// tlsTestSystemRoots replaces the system root store for the test.
func tlsTestSystemRoots(t *testing.T, f func() (*x509.CertPool, error)) {
	old := systemCertPool
	systemCertPool = f
	t.Cleanup(func() { systemCertPool = old })
}

func TestServerConfigNoCA(t *testing.T) {
	d := tlsTestDevCerts(t)
	o := Options{Key: d.ServerKey, Cert: d.ServerCert, RequestCert: true}

	// Without a system root store there is nothing to verify against.
	for name, roots := range map[string]func() (*x509.CertPool, error){
		"SystemCertPool fails": func() (*x509.CertPool, error) { return nil, errors.New("no roots here") },
		"SystemCertPool empty": func() (*x509.CertPool, error) { return x509.NewCertPool(), nil },
	} {
		t.Run(name, func(t *testing.T) {
			tlsTestSystemRoots(t, roots)
			o := o
			if _, err := ServerConfig(o); !errors.Is(err, ErrNoCA) {
				t.Errorf("RejectUnauthorized nil: err = %v, want ErrNoCA", err)
			}
			o.RejectUnauthorized = Bool(true)
			if _, err := ServerConfig(o); !errors.Is(err, ErrNoCA) {
				t.Errorf("RejectUnauthorized true: err = %v, want ErrNoCA", err)
			}
		})
	}

	t.Run("system roots", func(t *testing.T) {
		sys := x509.NewCertPool()
		sys.AppendCertsFromPEM(d.CACert)
		tlsTestSystemRoots(t, func() (*x509.CertPool, error) { return sys.Clone(), nil })
		cfg, err := ServerConfig(o)
		if err != nil {
			t.Fatalf("RequestCert without CA: %v", err)
		}
		if cfg.ClientAuth != tls.RequireAndVerifyClientCert || !cfg.ClientCAs.Equal(sys) {
			t.Errorf("ClientAuth %v, ClientCAs not the system roots", cfg.ClientAuth)
		}
		// The client certificate verifies against them, over a handshake.
		addr, res := tlsTestServe(t, cfg)
		if _, err := tlsTestDialAndRead(t, addr, tlsTestClientConfig(t, d.ClientOptions())); err != nil {
			t.Fatalf("client: %v", err)
		}
		if sr := tlsTestServerResultOf(t, res); sr.err != nil || len(sr.state.VerifiedChains) == 0 {
			t.Fatalf("server: %v, %d verified chains", sr.err, len(sr.state.VerifiedChains))
		}
		// A client of another CA is refused.
		other := tlsTestDevCerts(t)
		addr, res = tlsTestServe(t, cfg)
		copt := d.ClientOptions()
		copt.Key, copt.Cert = other.ClientKey, other.ClientCert
		tlsTestDialAndRead(t, addr, tlsTestClientConfig(t, copt))
		var uerr x509.UnknownAuthorityError
		if sr := tlsTestServerResultOf(t, res); !errors.As(sr.err, &uerr) {
			t.Fatalf("server: err = %v, want x509.UnknownAuthorityError", sr.err)
		}
	})

	t.Run("this machine", func(t *testing.T) {
		sys, err := x509.SystemCertPool()
		if err != nil || sys.Equal(x509.NewCertPool()) {
			t.Skipf("this machine has no system root store (%v): covered above with a replaced one", err)
		}
		cfg, err := ServerConfig(o)
		if err != nil {
			t.Fatalf("RequestCert without CA: %v", err)
		}
		if !cfg.ClientCAs.Equal(sys) {
			t.Error("ClientCAs are not x509.SystemCertPool()")
		}
	})

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(d.CACert)
	o.TLSConfig = &tls.Config{ClientCAs: pool}
	cfg, err := ServerConfig(o)
	if err != nil {
		t.Fatalf("ClientCAs from TLSConfig: %v", err)
	}
	if cfg.ClientCAs != pool || cfg.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Errorf("ClientCAs/ClientAuth not taken over: %v", cfg.ClientAuth)
	}

	tlsTestSystemRoots(t, func() (*x509.CertPool, error) { return nil, errors.New("no roots here") })
	o.TLSConfig = nil
	o.RejectUnauthorized = Bool(false)
	if _, err := ServerConfig(o); err != nil {
		t.Errorf("RejectUnauthorized false: %v", err)
	}
	if _, err := ServerConfig(Options{Key: d.ServerKey, Cert: d.ServerCert}); err != nil {
		t.Errorf("no RequestCert, no CA: %v", err)
	}
}

func TestServerConfigNoCertificate(t *testing.T) {
	d := tlsTestDevCerts(t)
	for _, o := range []Options{{}, {CA: d.CACert}, {CA: d.CACert, RequestCert: true}, {TLSConfig: &tls.Config{}}} {
		if _, err := ServerConfig(o); !errors.Is(err, ErrNoCertificate) {
			t.Errorf("ServerConfig(%+v): err = %v, want ErrNoCertificate", o, err)
		}
	}
	pair, err := tls.X509KeyPair(d.ServerCert, d.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]*tls.Config{
		"Certificates":   {Certificates: []tls.Certificate{pair}},
		"GetCertificate": {GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &pair, nil }},
	} {
		if _, err := ServerConfig(Options{TLSConfig: tc}); err != nil {
			t.Errorf("%s in TLSConfig: %v", name, err)
		}
	}
	if _, err := ClientConfig(Options{}); err != nil {
		t.Errorf("ClientConfig without certificate: %v", err)
	}
}

func TestServerConfigFields(t *testing.T) {
	d := tlsTestDevCerts(t)

	cfg := tlsTestServerConfig(t, d.ServerOptions())
	if cfg.MinVersion != tls.VersionTLS12 || cfg.MaxVersion != 0 {
		t.Errorf("versions %x..%x, want TLS 1.2..default", cfg.MinVersion, cfg.MaxVersion)
	}
	if cfg.ClientAuth != tls.RequireAndVerifyClientCert || cfg.ClientCAs == nil {
		t.Errorf("ClientAuth %v, ClientCAs %v", cfg.ClientAuth, cfg.ClientCAs)
	}
	if len(cfg.Certificates) != 1 || cfg.Certificates[0].Leaf == nil || cfg.Certificates[0].Leaf.Subject.CommonName != devServerName {
		t.Errorf("Certificates %v", cfg.Certificates)
	}
	if cfg.InsecureSkipVerify {
		t.Error("InsecureSkipVerify set")
	}

	o := d.ServerOptions()
	o.RequestCert = false
	if cfg := tlsTestServerConfig(t, o); cfg.ClientAuth != tls.NoClientCert {
		t.Errorf("without RequestCert: ClientAuth %v, want NoClientCert", cfg.ClientAuth)
	}
	o.RequestCert, o.RejectUnauthorized = true, Bool(false)
	if cfg := tlsTestServerConfig(t, o); cfg.ClientAuth != tls.RequestClientCert || cfg.InsecureSkipVerify {
		t.Errorf("RequestCert, RejectUnauthorized false: ClientAuth %v, InsecureSkipVerify %v", cfg.ClientAuth, cfg.InsecureSkipVerify)
	}
}

func TestClientConfigFields(t *testing.T) {
	d, other := tlsTestDevCerts(t), tlsTestDevCerts(t)

	cfg := tlsTestClientConfig(t, Options{})
	if cfg.MinVersion != tls.VersionTLS12 || cfg.RootCAs != nil || len(cfg.Certificates) != 0 || cfg.InsecureSkipVerify || cfg.ServerName != "" {
		t.Errorf("empty options gave %+v", cfg)
	}

	o := d.ClientOptions()
	o.CA = append(bytes.Clone(d.CACert), other.CACert...) // a bundle
	o.ServerName = "example.test"
	cfg = tlsTestClientConfig(t, o)
	if cfg.ServerName != "example.test" || cfg.InsecureSkipVerify {
		t.Errorf("ServerName %q, InsecureSkipVerify %v", cfg.ServerName, cfg.InsecureSkipVerify)
	}
	if len(cfg.Certificates) != 1 || cfg.Certificates[0].Leaf.Subject.CommonName != "tokenserver client" {
		t.Errorf("Certificates %v", cfg.Certificates)
	}
	// Both CAs of the bundle are trusted.
	for _, dc := range []*DevCerts{d, other} {
		b, _ := pem.Decode(dc.ServerCert)
		leaf, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: cfg.RootCAs, DNSName: "localhost"}); err != nil {
			t.Errorf("RootCAs from a CA bundle: %v", err)
		}
	}
}

func TestConfigTLSConfigEscapeHatch(t *testing.T) {
	d := tlsTestDevCerts(t)
	user := &tls.Config{
		MinVersion:         tls.VersionTLS10,
		NextProtos:         []string{"token/1"},
		InsecureSkipVerify: true,
		ServerName:         "user.example",
		ClientAuth:         tls.VerifyClientCertIfGiven,
	}

	cfg := tlsTestClientConfig(t, Options{TLSConfig: user})
	if cfg == user {
		t.Fatal("TLSConfig not cloned")
	}
	if user.MinVersion != tls.VersionTLS10 {
		t.Error("TLSConfig modified")
	}
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion %x, want raised to TLS 1.2", cfg.MinVersion)
	}
	if len(cfg.NextProtos) != 1 || cfg.ServerName != "user.example" || !cfg.InsecureSkipVerify {
		t.Errorf("unset options overrode TLSConfig: %+v", cfg)
	}

	cfg = tlsTestClientConfig(t, Options{TLSConfig: user, RejectUnauthorized: Bool(true), ServerName: "mine.example"})
	if cfg.InsecureSkipVerify || cfg.ServerName != "mine.example" {
		t.Errorf("set options did not override TLSConfig: InsecureSkipVerify %v, ServerName %q", cfg.InsecureSkipVerify, cfg.ServerName)
	}
	if !user.InsecureSkipVerify || user.ServerName != "user.example" {
		t.Error("TLSConfig modified")
	}

	user13 := &tls.Config{MinVersion: tls.VersionTLS13}
	if cfg := tlsTestClientConfig(t, Options{TLSConfig: user13}); cfg.MinVersion != tls.VersionTLS13 {
		t.Errorf("MinVersion %x, want TLS 1.3 kept", cfg.MinVersion)
	}

	o := Options{Key: d.ServerKey, Cert: d.ServerCert, TLSConfig: user}
	if cfg := tlsTestServerConfig(t, o); cfg.ClientAuth != tls.VerifyClientCertIfGiven {
		t.Errorf("without RequestCert, ClientAuth %v, want the TLSConfig's", cfg.ClientAuth)
	}
	o.CA, o.RequestCert = d.CACert, true
	if cfg := tlsTestServerConfig(t, o); cfg.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Errorf("with RequestCert, ClientAuth %v, want RequireAndVerifyClientCert", cfg.ClientAuth)
	}
	if user.ClientCAs != nil || len(user.Certificates) != 0 {
		t.Error("TLSConfig modified")
	}
}

// tlsTestCaptureLog sends slog.Default() to a buffer for the test and resets
// the once-only warnings.
func tlsTestCaptureLog(t *testing.T) *bytes.Buffer {
	var buf bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
	t.Cleanup(func() { slog.SetDefault(old) })
	warnServerOnce, warnClientOnce = sync.Once{}, sync.Once{}
	return &buf
}

func TestRejectUnauthorizedFalseWarnsOnce(t *testing.T) {
	d := tlsTestDevCerts(t)
	buf := tlsTestCaptureLog(t)

	// No warning where verification is not weakened.
	tlsTestClientConfig(t, d.ClientOptions())
	tlsTestClientConfig(t, Options{RejectUnauthorized: Bool(true)})
	tlsTestServerConfig(t, Options{Key: d.ServerKey, Cert: d.ServerCert, RejectUnauthorized: Bool(false)})
	tlsTestServerConfig(t, d.ServerOptions())
	if buf.Len() != 0 {
		t.Fatalf("unexpected log: %s", buf)
	}

	for range 3 {
		tlsTestClientConfig(t, Options{RejectUnauthorized: Bool(false)})
		o := d.ServerOptions()
		o.RejectUnauthorized = Bool(false)
		tlsTestServerConfig(t, o)
	}
	out := buf.String()
	if n := strings.Count(out, "level=WARN"); n != 2 {
		t.Fatalf("%d warnings, want 2 (one client, one server):\n%s", n, out)
	}
	if !strings.Contains(out, "server certificates are not verified") || !strings.Contains(out, "client certificates are requested but not verified") {
		t.Errorf("warnings do not say what is unverified:\n%s", out)
	}
}
