package main

import (
	"bytes"
	"crypto/x509"
	"log/slog"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/tlsio"
)

// The warnings of serve's TLS material: a certificate expired or about to,
// within --expiry-warning or not, and a revocation list past its next
// update.
func TestTLSMaterialWarnings(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	cert := func(left time.Duration) *x509.Certificate {
		return &x509.Certificate{SerialNumber: big.NewInt(0xabc), NotAfter: now.Add(left)}
	}
	for _, tc := range []struct {
		name   string
		within time.Duration
		info   tlsio.Info
		want   string // "": no warning
	}{
		{"expired", 720 * time.Hour, tlsio.Info{Certificate: cert(-time.Hour)}, `level=WARN msg="the server certificate has expired: replace it and send SIGHUP" serial=0ABC`},
		{"expires within", 720 * time.Hour, tlsio.Info{Certificate: cert(48 * time.Hour)}, `msg="the server certificate expires soon: replace it and send SIGHUP" serial=0ABC subject="" not_after=2030-01-04T03:04:05Z expires_in=48h0m0s`},
		{"expires later", 720 * time.Hour, tlsio.Info{Certificate: cert(721 * time.Hour)}, ""},
		{"warning off", 0, tlsio.Info{Certificate: cert(-time.Hour)}, ""},
		{"no certificate", 720 * time.Hour, tlsio.Info{}, ""},
		{"list past its next update", 720 * time.Hour, tlsio.Info{Certificate: cert(8760 * time.Hour), CRLNextUpdate: now.Add(-time.Minute)},
			`level=WARN msg="the revocation list is past its next update: fetch a newer one and send SIGHUP" next_update=2030-01-02T03:03:05Z`},
		{"list current", 720 * time.Hour, tlsio.Info{Certificate: cert(8760 * time.Hour), CRLNextUpdate: now.Add(time.Minute)}, ""},
	} {
		var buf bytes.Buffer
		l := &tlsLife{flags: reloadFlags{expiryWarning: tc.within}, log: slog.New(slog.NewTextHandler(&buf, nil))}
		l.warn(tc.info, now)
		switch got := buf.String(); {
		case tc.want == "" && got != "":
			t.Errorf("%s: logged %q, want nothing", tc.name, got)
		case tc.want != "" && (strings.Count(got, "\n") != 1 || !strings.Contains(got, tc.want)):
			t.Errorf("%s: logged %q, want one line with %q", tc.name, got, tc.want)
		}
	}
}

func TestServeHelpDocumentsReload(t *testing.T) {
	t.Parallel()
	r := runInProcess(t, "serve", "--help")
	for _, want := range []string{"--crl FILE", "SIGHUP", "--expiry-warning D", "(default 720h0m0s)", "tokenserver_tls_certificate_expiry_seconds"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("serve help does not contain %q:\n%s", want, r.stdout)
		}
	}
}
