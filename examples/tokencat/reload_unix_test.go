//go:build unix

package main

import (
	"bufio"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// serve reloads its TLS files on SIGHUP (issue 28), through the binary:
// rotation seen by new connections while one held open goes on, a revoked
// client cut, failed reloads logged with the server serving on, and the
// certificate's expiry as a warning and a metric.

// liveFiles copies the server's files of the "tokencat certs" dir from into
// a folder of their own, which the test changes under the running server,
// and returns the folder.
func liveFiles(t *testing.T, from string) string {
	t.Helper()
	live := t.TempDir()
	for _, name := range []string{"ca.crt", "server.crt", "server.key"} {
		writeTestFile(t, live, name, readFile(t, filepath.Join(from, name)))
	}
	return live
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// revocationList is a list signed by the CA of the "tokencat certs" dir
// that revokes certs: PEM, or DER when der is set.
func revocationList(t *testing.T, dir string, der bool, certs ...*x509.Certificate) []byte {
	t.Helper()
	ca := readPair(t, dir, "ca")
	now := time.Now()
	tmpl := &x509.RevocationList{Number: big.NewInt(now.Unix()), ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(24 * time.Hour)}
	for _, c := range certs {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: now})
	}
	list, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Leaf, ca.PrivateKey.(crypto.Signer))
	if err != nil {
		t.Fatal(err)
	}
	if der {
		return list
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: list})
}

// hup sends SIGHUP to serve and waits until its log holds one more line
// with outcome than before ("TLS material reloaded" or "TLS reload
// failed").
func (p *serveProc) hup(t *testing.T, outcome string) {
	t.Helper()
	before := strings.Count(p.stderr.String(), outcome)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() bool { return strings.Count(p.stderr.String(), outcome) > before },
		"serve logged no "+outcome+" after SIGHUP:\n"+p.stderr.String())
}

// lastLine is the last line of serve's log that holds s.
func (p *serveProc) lastLine(s string) string {
	lines := strings.Split(p.stderr.String(), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], s) {
			return lines[i]
		}
	}
	return ""
}

// echoer is a connection to serve held open by the test.
type echoer struct {
	conn *tls.Conn
	rd   *bufio.Reader
}

func hold(conn *tls.Conn) *echoer { return &echoer{conn, bufio.NewReader(conn)} }

// echo sends tok and checks that it comes back.
func (e *echoer) echo(t *testing.T, tok string) {
	t.Helper()
	_ = e.conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := e.conn.Write([]byte(tok + "\n")); err != nil {
		t.Fatalf("write %q: %v", tok, err)
	}
	if line, err := e.rd.ReadString('\n'); err != nil || line != tok+"\n" {
		t.Fatalf("echo of %q: %q, %v", tok, line, err)
	}
}

// serverSerial is the serial number of the certificate conn's server
// presented.
func serverSerial(conn *tls.Conn) string {
	return serialHex(conn.ConnectionState().PeerCertificates[0].SerialNumber)
}

// SIGHUP after the files moved to a new CA: a connection held open across
// it keeps echoing; a new connection of the new CA, and a tokencat send,
// see the new certificate; the log says what changed; the expiry gauge
// follows. The key is encrypted, its passphrase in $TOKENCAT_PASSPHRASE,
// which serve unsets at start and keeps for its reloads.
func TestServeSIGHUPRotatesToNewCA(t *testing.T) {
	t.Parallel()
	oldDir, newDir := certDir(t), certDir(t)
	live := liveFiles(t, oldDir)
	writeTestFile(t, live, "server.key", encryptedKey(t, readPair(t, oldDir, "server"), testPassphrase))
	srv := startSubEnv(t, []string{"TOKENCAT_PASSPHRASE=" + testPassphrase}, "serve", "127.0.0.1:0",
		"--ca", filepath.Join(live, "ca.crt"), "--cert", filepath.Join(live, "server.crt"), "--key", filepath.Join(live, "server.key"),
		"--metrics", "127.0.0.1:0")
	metrics := srv.metricsURL(t)
	oldSerial := serialHex(readCert(t, filepath.Join(oldDir, "server.crt")).SerialNumber)
	newCert := readCert(t, filepath.Join(newDir, "server.crt"))
	newSerial := serialHex(newCert.SerialNumber)

	held := hold(dialClient(t, srv.addr, oldDir))
	if got := serverSerial(held.conn); got != oldSerial {
		t.Fatalf("serial %s before the reload, want %s", got, oldSerial)
	}
	held.echo(t, "before")

	writeTestFile(t, live, "ca.crt", readFile(t, filepath.Join(newDir, "ca.crt")))
	writeTestFile(t, live, "server.crt", readFile(t, filepath.Join(newDir, "server.crt")))
	writeTestFile(t, live, "server.key", encryptedKey(t, readPair(t, newDir, "server"), testPassphrase))
	srv.hup(t, "SIGHUP: TLS material reloaded")
	line := srv.lastLine("SIGHUP: TLS material reloaded")
	for _, want := range []string{"serial=" + newSerial, "previous_serial=" + oldSerial, "certificate=changed", "ca=changed",
		"not_after=" + newCert.NotAfter.UTC().Format(time.RFC3339)} {
		if !strings.Contains(line, want) {
			t.Errorf("reload log line %q lacks %q", line, want)
		}
	}

	held.echo(t, "after")
	if got := dialClient(t, srv.addr, newDir); serverSerial(got) != newSerial {
		t.Fatalf("a new connection saw serial %s, want the new %s", serverSerial(got), newSerial)
	}
	if r := tokencat(t, 30*time.Second, "", sendArgs(srv.addr, newDir, "--timeout", "10s", "rotated")...); r.code != 0 || r.stdout != "rotated\n" {
		t.Fatalf("send with the new CA's client: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := tokencat(t, 30*time.Second, "", sendArgs(srv.addr, oldDir, "--timeout", "10s", "stale")...); r.code != 1 {
		t.Fatalf("send with the old CA's client: exit %d, want 1 (stderr %q)", r.code, r.stderr)
	}
	held.echo(t, "still")
	scrapeUntil(t, metrics, "the expiry gauge of the new certificate", func(f families) bool {
		_, ok := f.value(t, "tokenserver_tls_certificate_expiry_seconds", "serial", newSerial)
		return ok
	})
}

// SIGHUP with a list that now revokes a connected client cuts that
// connection (logged with the revoked serial); another client's connection
// goes on; the revoked client cannot come back. The list is read as PEM,
// then as DER.
func TestServeSIGHUPRevokesConnectedClient(t *testing.T) {
	t.Parallel()
	dir, otherDir := certDir(t), certDir(t)
	live := liveFiles(t, dir)
	// Two CAs trusted, so that a client of each connects; the list is the
	// first CA's.
	writeTestFile(t, live, "ca.crt", append(readFile(t, filepath.Join(dir, "ca.crt")), readFile(t, filepath.Join(otherDir, "ca.crt"))...))
	writeTestFile(t, live, "crl.pem", revocationList(t, dir, false))
	srv := startServeArgs(t, "127.0.0.1:0", "--ca", filepath.Join(live, "ca.crt"), "--cert", filepath.Join(live, "server.crt"),
		"--key", filepath.Join(live, "server.key"), "--crl", filepath.Join(live, "crl.pem"))

	victim := hold(dialClient(t, srv.addr, dir))
	victim.echo(t, "victim")
	other := hold(dialClientOf(t, srv.addr, otherDir, dir))
	other.echo(t, "other")

	revoked := readCert(t, filepath.Join(dir, "client.crt"))
	writeTestFile(t, live, "crl.pem", revocationList(t, dir, true, revoked))
	srv.hup(t, "SIGHUP: TLS material reloaded")
	if line := srv.lastLine("SIGHUP: TLS material reloaded"); !strings.Contains(line, "crl_revoked_serials=1") {
		t.Errorf("reload log line %q does not count the revoked serial", line)
	}
	_ = victim.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	var ne net.Error
	if _, err := victim.rd.ReadString('\n'); err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("the revoked client's connection: read %v, want it closed by the server", err)
	}
	waitFor(t, 10*time.Second, func() bool {
		line := srv.lastLine("connection error")
		return strings.Contains(line, "certificate revoked") && strings.Contains(line, serialHex(revoked.SerialNumber))
	}, "serve logged no connection error naming the revoked serial:\n"+srv.stderr.String())
	other.echo(t, "other after")

	if r := tokencat(t, 30*time.Second, "", sendArgs(srv.addr, dir, "--timeout", "10s", "again")...); r.code != 1 {
		t.Fatalf("send with the revoked certificate: exit %d, stdout %q; want 1", r.code, r.stdout)
	}
	other.echo(t, "other at last")
}

// A reload that fails (a file unreadable or missing, a certificate that is
// not one, a key of another certificate, a wrong passphrase, a list of
// another CA) is logged and changes nothing: a new connection sees the
// same certificate, one held open goes on, the process serves on. Then a
// good reload works.
func TestServeSIGHUPFailedReloadKeepsServing(t *testing.T) {
	t.Parallel()
	dir, otherDir := certDir(t), certDir(t)
	live := liveFiles(t, dir)
	writeTestFile(t, live, "server.key", encryptedKey(t, readPair(t, dir, "server"), testPassphrase))
	writeTestFile(t, live, "pass", []byte(testPassphrase+"\n"))
	writeTestFile(t, live, "crl.pem", revocationList(t, dir, false))
	srv := startServeArgs(t, "127.0.0.1:0", "--ca", filepath.Join(live, "ca.crt"), "--cert", filepath.Join(live, "server.crt"),
		"--key", filepath.Join(live, "server.key"), "--passphrase-file", filepath.Join(live, "pass"), "--crl", filepath.Join(live, "crl.pem"))
	serial := serialHex(readCert(t, filepath.Join(dir, "server.crt")).SerialNumber)
	held := hold(dialClient(t, srv.addr, dir))

	for _, tc := range []struct {
		name, file string
		data       []byte // nil: remove the file
		want       string
	}{
		{"certificate not PEM", "server.crt", []byte("not a certificate\n"), "bad PEM"},
		{"key missing", "server.key", nil, "no such file or directory"},
		{"key of another certificate", "server.key", encryptedKey(t, readPair(t, dir, "client"), testPassphrase), "private key does not match"},
		{"wrong passphrase", "pass", []byte("wrong\n"), "the passphrase in --passphrase-file " + filepath.Join(live, "pass") + " does not decrypt --key"},
		{"list of another CA", "crl.pem", revocationList(t, otherDir, false), "bad certificate revocation list"},
		{"list missing", "crl.pem", nil, "read crl file"},
	} {
		good := readFile(t, filepath.Join(live, tc.file))
		if tc.data == nil {
			if err := os.Remove(filepath.Join(live, tc.file)); err != nil {
				t.Fatal(err)
			}
		} else {
			writeTestFile(t, live, tc.file, tc.data)
		}
		srv.hup(t, "SIGHUP: TLS reload failed")
		if line := srv.lastLine("SIGHUP: TLS reload failed"); !strings.Contains(line, tc.want) {
			t.Fatalf("%s: the log line %q lacks %q", tc.name, line, tc.want)
		}
		held.echo(t, tc.name)
		if got := serverSerial(dialClient(t, srv.addr, dir)); got != serial {
			t.Fatalf("%s: a new connection saw serial %s, want the same %s", tc.name, got, serial)
		}
		writeTestFile(t, live, tc.file, good)
	}
	if strings.Contains(srv.stderr.String(), "SIGHUP: TLS material reloaded") {
		t.Fatalf("a failed reload was logged as done:\n%s", srv.stderr.String())
	}
	srv.hup(t, "SIGHUP: TLS material reloaded")
	if line := srv.lastLine("SIGHUP: TLS material reloaded"); !strings.Contains(line, "certificate=unchanged") || !strings.Contains(line, "ca=unchanged") {
		t.Errorf("reload of the same files: %q", line)
	}
	held.echo(t, "after a good reload")
	select {
	case <-srv.done:
		t.Fatalf("serve exited:\n%s", srv.stderr.String())
	default:
	}
}

// A server certificate that expires within --expiry-warning is a warning
// at start and at each SIGHUP; with --metrics its expiry is a gauge of the
// seconds left. The default (30 days) says nothing of a certificate valid
// for a year.
func TestServeCertificateExpiryWarningAndMetric(t *testing.T) {
	t.Parallel()
	dir := certDir(t)
	cert := readCert(t, filepath.Join(dir, "server.crt"))
	serial := serialHex(cert.SerialNumber)
	const warning = "the server certificate expires soon"

	srv := startServe(t, dir, "--metrics", "127.0.0.1:0", "--expiry-warning", "9000h") // a year is 8760 h
	metrics := srv.metricsURL(t)
	waitFor(t, 10*time.Second, func() bool { return strings.Count(srv.stderr.String(), warning) == 1 },
		"no expiry warning at start:\n"+srv.stderr.String())
	if line := srv.lastLine(warning); !strings.Contains(line, "serial="+serial) || !strings.Contains(line, "level=WARN") {
		t.Errorf("warning line %q", line)
	}
	v, ok := scrape(t, metrics).value(t, "tokenserver_tls_certificate_expiry_seconds", "serial", serial)
	if want := time.Until(cert.NotAfter).Seconds(); !ok || math.Abs(v-want) > 60 {
		t.Fatalf("tokenserver_tls_certificate_expiry_seconds{serial=%q} = %v (found %v), want about %.0f", serial, v, ok, want)
	}
	srv.hup(t, "SIGHUP: TLS material reloaded")
	waitFor(t, 10*time.Second, func() bool { return strings.Count(srv.stderr.String(), warning) == 2 },
		"no expiry warning at the reload:\n"+srv.stderr.String())

	quiet := startServe(t, dir)
	quiet.hup(t, "SIGHUP: TLS material reloaded")
	if strings.Contains(quiet.stderr.String(), warning) {
		t.Errorf("a certificate valid for a year was warned about with the default --expiry-warning:\n%s", quiet.stderr.String())
	}
	if !strings.Contains(quiet.stderr.String(), `msg="TLS material" serial=`+serial) {
		t.Errorf("the start did not log the certificate in use:\n%s", quiet.stderr.String())
	}
}
