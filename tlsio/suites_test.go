package tlsio

import (
	"crypto/tls"
	"strings"
	"testing"
)

// TestTLS12AEADSuitesOnly: over TLS 1.2, a server and a client built by
// tlsio offer only ECDHE suites with an AEAD (AES-GCM, ChaCha20-Poly1305);
// a peer restricted to a CBC suite is refused (issue 30).
func TestTLS12AEADSuitesOnly(t *testing.T) {
	d := tlsTestDevCerts(t) // ECDSA certificates
	tls12 := func(suite uint16) *tls.Config {
		cfg := tlsTestClientConfig(t, d.ClientOptions())
		cfg.MaxVersion = tls.VersionTLS12
		cfg.CipherSuites = []uint16{suite}
		return cfg
	}
	for _, tc := range []struct {
		suite uint16
		ok    bool
	}{
		{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, true},
		{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, true},
		{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, true},
		{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, false},
		{tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, false},
		{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, false},
	} {
		name := tls.CipherSuiteName(tc.suite)
		t.Run("server, client offers "+name, func(t *testing.T) {
			addr, res := tlsTestServe(t, tlsTestServerConfig(t, d.ServerOptions()))
			cs, err := tlsTestDialAndRead(t, addr, tls12(tc.suite))
			sr := tlsTestServerResultOf(t, res)
			if tc.ok {
				if err != nil || sr.err != nil || cs.CipherSuite != tc.suite || cs.Version != tls.VersionTLS12 {
					t.Fatalf("client %v, server %v, suite %s, version %x", err, sr.err, tls.CipherSuiteName(cs.CipherSuite), cs.Version)
				}
				return
			}
			if err == nil || sr.err == nil || !strings.Contains(sr.err.Error(), "no cipher suite supported by both client and server") {
				t.Fatalf("client %v, server %v; want the server to find no common cipher suite", err, sr.err)
			}
		})
	}
	t.Run("client, server offers only a CBC suite", func(t *testing.T) {
		scfg := tlsTestServerConfig(t, d.ServerOptions())
		scfg.MaxVersion = tls.VersionTLS12
		scfg.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}
		addr, res := tlsTestServe(t, scfg)
		_, err := tlsTestDialAndRead(t, addr, tlsTestClientConfig(t, d.ClientOptions()))
		sr := tlsTestServerResultOf(t, res)
		if err == nil || sr.err == nil {
			t.Fatalf("client %v, server %v; want refused", err, sr.err)
		}
	})
	t.Run("TLSConfig.CipherSuites is kept", func(t *testing.T) {
		mine := []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}
		o := d.ServerOptions()
		o.TLSConfig = &tls.Config{CipherSuites: mine}
		for side, cfg := range map[string]*tls.Config{"server": tlsTestServerConfig(t, o), "client": tlsTestClientConfig(t, o)} {
			if len(cfg.CipherSuites) != 1 || cfg.CipherSuites[0] != mine[0] {
				t.Errorf("%s: CipherSuites %v, want the TLSConfig's", side, cfg.CipherSuites)
			}
		}
	})
	t.Run("every suite offered is secure", func(t *testing.T) {
		for side, cfg := range map[string]*tls.Config{
			"server": tlsTestServerConfig(t, d.ServerOptions()), "client": tlsTestClientConfig(t, d.ClientOptions()),
		} {
			if len(cfg.CipherSuites) == 0 {
				t.Fatalf("%s: CipherSuites empty (Go's defaults, with CBC)", side)
			}
			for _, id := range cfg.CipherSuites {
				name := tls.CipherSuiteName(id)
				if !strings.HasPrefix(name, "TLS_ECDHE_") || !(strings.Contains(name, "_GCM_") || strings.Contains(name, "CHACHA20_POLY1305")) {
					t.Errorf("%s offers %s", side, name)
				}
			}
		}
	})
}
