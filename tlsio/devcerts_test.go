package tlsio

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func tlsTestParseCert(t *testing.T, b []byte) *x509.Certificate {
	t.Helper()
	block, rest := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("not a single PEM certificate: %q", b)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func tlsTestParseKey(t *testing.T, b []byte) *ecdsa.PrivateKey {
	t.Helper()
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		t.Fatalf("not a PEM PKCS #8 key: %q", b)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		t.Fatalf("key is %T, want ECDSA P-256", k)
	}
	return ek
}

func TestGenerateDevCerts(t *testing.T) {
	before := time.Now()
	d := tlsTestDevCerts(t, "example.test", "10.1.2.3", "[2001:db8::1]", "LOCALHOST", "127.0.0.1", "Example.Test")

	ca := tlsTestParseCert(t, d.CACert)
	server := tlsTestParseCert(t, d.ServerCert)
	client := tlsTestParseCert(t, d.ClientCert)
	caKey := tlsTestParseKey(t, d.CAKey)
	serverKey := tlsTestParseKey(t, d.ServerKey)
	clientKey := tlsTestParseKey(t, d.ClientKey)

	if !ca.IsCA || !ca.BasicConstraintsValid || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Error("CA certificate is not a CA")
	}
	if server.IsCA || client.IsCA {
		t.Error("leaf certificate is a CA")
	}
	for name, pair := range map[string]struct {
		cert *x509.Certificate
		key  *ecdsa.PrivateKey
	}{"ca": {ca, caKey}, "server": {server, serverKey}, "client": {client, clientKey}} {
		if !pair.key.PublicKey.Equal(pair.cert.PublicKey) {
			t.Errorf("%s: key does not match certificate", name)
		}
		if pair.cert.SignatureAlgorithm != x509.ECDSAWithSHA256 {
			t.Errorf("%s: signature algorithm %v", name, pair.cert.SignatureAlgorithm)
		}
		if nb := pair.cert.NotBefore; nb.After(before.Add(-59*time.Minute)) || nb.Before(before.Add(-61*time.Minute)) {
			t.Errorf("%s: NotBefore %v, want about an hour ago", name, nb)
		}
		if na := pair.cert.NotAfter; na.Before(before.AddDate(1, 0, -1)) || na.After(time.Now().AddDate(1, 0, 1)) {
			t.Errorf("%s: NotAfter %v, want about a year from now", name, na)
		}
	}

	if want := []string{"localhost", "example.test"}; !slices.Equal(server.DNSNames, want) {
		t.Errorf("server DNS SANs %q, want %q", server.DNSNames, want)
	}
	wantIPs := []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback, net.ParseIP("10.1.2.3"), net.ParseIP("2001:db8::1")}
	if len(server.IPAddresses) != len(wantIPs) {
		t.Errorf("server IP SANs %v, want %v", server.IPAddresses, wantIPs)
	} else {
		for i, ip := range wantIPs {
			if !server.IPAddresses[i].Equal(ip) {
				t.Errorf("server IP SANs %v, want %v", server.IPAddresses, wantIPs)
				break
			}
		}
	}
	if !slices.Equal(server.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Errorf("server ExtKeyUsage %v", server.ExtKeyUsage)
	}
	if !slices.Equal(client.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Errorf("client ExtKeyUsage %v", client.ExtKeyUsage)
	}
	if client.Subject.CommonName != "tokenserver client" {
		t.Errorf("client CN %q", client.Subject.CommonName)
	}

	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, name := range []string{"localhost", "example.test", "127.0.0.1", "::1", "10.1.2.3", "2001:db8::1"} {
		if _, err := server.Verify(x509.VerifyOptions{Roots: roots, DNSName: name}); err != nil {
			t.Errorf("server certificate for %s: %v", name, err)
		}
	}
	if _, err := server.Verify(x509.VerifyOptions{Roots: roots, DNSName: "other.test"}); err == nil {
		t.Error("server certificate valid for other.test")
	}
	if _, err := client.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate: %v", err)
	}
	if _, err := client.Verify(x509.VerifyOptions{Roots: roots}); err == nil {
		t.Error("client certificate valid for server authentication")
	}

	// Fresh every time.
	d2 := tlsTestDevCerts(t)
	if bytes.Equal(d.CACert, d2.CACert) || bytes.Equal(d.ServerKey, d2.ServerKey) {
		t.Error("two generations gave the same certificates")
	}
	if s2 := tlsTestParseCert(t, d2.ServerCert); !slices.Equal(s2.DNSNames, []string{"localhost"}) || len(s2.IPAddresses) != 2 {
		t.Errorf("default SANs: %q %v", s2.DNSNames, s2.IPAddresses)
	}
}

func TestGenerateDevCertsEmptyHost(t *testing.T) {
	if _, err := GenerateDevCerts("ok.test", " "); err == nil {
		t.Error("empty host accepted")
	}
}

func TestDevCertsOptions(t *testing.T) {
	d := tlsTestDevCerts(t)
	s, c := d.ServerOptions(), d.ClientOptions()
	if !bytes.Equal(s.Key, d.ServerKey) || !bytes.Equal(s.Cert, d.ServerCert) || !bytes.Equal(s.CA, d.CACert) ||
		!s.RequestCert || s.RejectUnauthorized != nil || s.TLSConfig != nil {
		t.Errorf("ServerOptions: %+v", s)
	}
	if !bytes.Equal(c.Key, d.ClientKey) || !bytes.Equal(c.Cert, d.ClientCert) || !bytes.Equal(c.CA, d.CACert) ||
		c.RequestCert || c.RejectUnauthorized != nil || c.TLSConfig != nil {
		t.Errorf("ClientOptions: %+v", c)
	}
	s.Key[0] ^= 0xff
	c.CA[0] ^= 0xff
	if d.ServerKey[0] == s.Key[0] || d.CACert[0] == c.CA[0] {
		t.Error("options share memory with the DevCerts")
	}
}

func tlsTestCheckFiles(t *testing.T, dir string, d *DevCerts) {
	t.Helper()
	for _, f := range []struct {
		name string
		mode fs.FileMode
		data []byte
	}{
		{"ca.crt", 0o644, d.CACert},
		{"ca.key", 0o600, d.CAKey},
		{"server.crt", 0o644, d.ServerCert},
		{"server.key", 0o600, d.ServerKey},
		{"client.crt", 0o644, d.ClientCert},
		{"client.key", 0o600, d.ClientKey},
	} {
		p := filepath.Join(dir, f.name)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Errorf("%s: %v", f.name, err)
			continue
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm() != f.mode {
			t.Errorf("%s: mode %v, want %v", f.name, fi.Mode(), f.mode)
		}
		if b, err := os.ReadFile(p); err != nil || !bytes.Equal(b, f.data) {
			t.Errorf("%s: contents differ (%v)", f.name, err)
		}
	}
}

func TestDevCertsWriteFiles(t *testing.T) {
	d, d2 := tlsTestDevCerts(t), tlsTestDevCerts(t)
	dir := filepath.Join(t.TempDir(), "a", "certs")
	if err := d.WriteFiles(dir, false); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("dir not created: %v", err)
	}
	tlsTestCheckFiles(t, dir, d)

	// Refused without force, nothing changed.
	err := d2.WriteFiles(dir, false)
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second write without force: err = %v, want fs.ErrExist", err)
	}
	tlsTestCheckFiles(t, dir, d)

	// Force replaces, and fixes the modes.
	if err := os.Chmod(filepath.Join(dir, "server.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "outside")
	if err := os.WriteFile(outside, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "client.crt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "client.crt")); err != nil {
		t.Fatal(err)
	}
	if err := d2.WriteFiles(dir, true); err != nil {
		t.Fatalf("write with force: %v", err)
	}
	tlsTestCheckFiles(t, dir, d2)
	if b, _ := os.ReadFile(outside); string(b) != "keep" {
		t.Error("force followed a symbolic link")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 6 {
		t.Errorf("%d entries in dir, want 6 (temporary files left?)", len(entries))
	}
}

// With force, a name taken by a directory that cannot be replaced is an
// error naming it, and no temporary file is left behind.
func TestDevCertsWriteFilesForceOverDirectory(t *testing.T) {
	d := tlsTestDevCerts(t)
	dir := t.TempDir()
	blocker := filepath.Join(dir, "server.key")
	if err := os.MkdirAll(filepath.Join(blocker, "inside"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := d.WriteFiles(dir, true)
	if err == nil || !strings.Contains(err.Error(), "server.key") {
		t.Fatalf("err = %v, want an error naming server.key", err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left in dir", e.Name())
		}
	}
	if fi, err := os.Stat(blocker); err != nil || !fi.IsDir() {
		t.Errorf("the directory in the way was changed: %v", err)
	}
}

func TestDevCertsWriteFilesRefusesIfAnyExists(t *testing.T) {
	d := tlsTestDevCerts(t)
	dir := t.TempDir()
	existing := filepath.Join(dir, "client.key")
	if err := os.WriteFile(existing, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := d.WriteFiles(dir, false)
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("err = %v, want fs.ErrExist", err)
	}
	if !bytes.Contains([]byte(err.Error()), []byte(existing)) {
		t.Errorf("err %q does not name %s", err, existing)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d files in dir after refusal, want 1: nothing written", len(entries))
	}
	if b, _ := os.ReadFile(existing); string(b) != "mine" {
		t.Error("existing file changed")
	}
}
