package main

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

// writeTestFile writes data to dir/name (mode 0600) and returns the path.
func writeTestFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// readPair reads side's certificate and key from a "tokencat certs" dir.
func readPair(t *testing.T, dir, side string) tls.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, side+".crt"), filepath.Join(dir, side+".key"))
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

// readCert reads the first certificate of a PEM file.
func readCert(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM", file)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// encryptedKey is the ECDSA key of pair in the legacy encrypted PEM form
// (Proc-Type: 4,ENCRYPTED, AES-256-CBC), as "openssl ec -aes256" writes it.
// tlsio's own tests cover PKCS #8 and every cipher; this one is for the
// flags.
func encryptedKey(t *testing.T, pair tls.Certificate, passphrase string) []byte {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(pair.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	block, err := x509.EncryptPEMBlock(rand.Reader, "EC PRIVATE KEY", der, []byte(passphrase), x509.PEMCipherAES256) //lint:ignore SA1019 the legacy form is one that tokencat reads
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(block)
}

// pfxOf encodes pair and the CA as a PKCS #12 archive (PBES2, AES-256-CBC).
func pfxOf(t *testing.T, pair tls.Certificate, ca *x509.Certificate, passphrase string) []byte {
	t.Helper()
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	pfx, err := pkcs12.Modern.Encode(pair.PrivateKey, leaf, []*x509.Certificate{ca}, passphrase)
	if err != nil {
		t.Fatal(err)
	}
	return pfx
}

const testPassphrase = "correct horse battery staple"

// An encrypted server key with --passphrase-file; a client PFX with the
// passphrase in TOKENCAT_PASSPHRASE or in a file; wrong and missing
// passphrases exit 1 with an error that says so.
func TestEncryptedKeyAndPFXFlags(t *testing.T) {
	t.Parallel()
	dir := certDir(t)
	files := t.TempDir()
	ca := filepath.Join(dir, "ca.crt")
	serverKey := writeTestFile(t, files, "server-enc.key", encryptedKey(t, readPair(t, dir, "server"), testPassphrase))
	clientPFX := writeTestFile(t, files, "client.pfx", pfxOf(t, readPair(t, dir, "client"), readCert(t, ca), testPassphrase))
	passFile := writeTestFile(t, files, "pass", []byte(testPassphrase+"\n"))
	crlfFile := writeTestFile(t, files, "pass-crlf", []byte(testPassphrase+"\r\nsecond line\n"))
	wrongFile := writeTestFile(t, files, "wrong", []byte("wrong\n"))
	serverTLS := []string{"--ca", ca, "--cert", filepath.Join(dir, "server.crt"), "--key", serverKey}

	// The server's key without its passphrase: exit 1 before listening,
	// with a message in the command line's terms (flags, variable), not
	// the library's (Options.Passphrase).
	for env, want := range map[string]string{
		"TOKENCAT_PASSPHRASE=":      "--key " + serverKey + " is encrypted and no passphrase was given: pass --passphrase-file FILE or set TOKENCAT_PASSPHRASE",
		"TOKENCAT_PASSPHRASE=wrong": "the passphrase in $TOKENCAT_PASSPHRASE does not decrypt --key " + serverKey + ": ",
	} {
		r := tokencatEnv(t, 30*time.Second, []string{env}, "", append([]string{"serve", "--listen", "127.0.0.1:0"}, serverTLS...)...)
		if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, want) || strings.Contains(r.stderr, "Options.") {
			t.Errorf("serve, %s: exit %d, stdout %q, stderr %q; want exit 1 and %q", env, r.code, r.stdout, r.stderr, want)
		}
	}

	srv := startServeArgs(t, "127.0.0.1:0", append(serverTLS, "--passphrase-file", passFile)...)
	withPFX := []string{"send", "--addr", srv.addr, "--ca", ca, "--pfx", clientPFX, "--timeout", "10s"}
	for _, tc := range []struct {
		name  string
		env   []string
		flags []string
	}{
		{"environment", []string{"TOKENCAT_PASSPHRASE=" + testPassphrase}, nil},
		{"file", []string{"TOKENCAT_PASSPHRASE="}, []string{"--passphrase-file", passFile}},
		{"file, first line, CRLF", nil, []string{"--passphrase-file", crlfFile}},
		{"file before environment", []string{"TOKENCAT_PASSPHRASE=wrong"}, []string{"--passphrase-file", passFile}},
	} {
		args := append(append(append([]string{}, withPFX...), tc.flags...), "hello", "pfx")
		r := tokencatEnv(t, 30*time.Second, tc.env, "", args...)
		if r.code != 0 || r.stdout != "hello\npfx\n" {
			t.Errorf("send --pfx, passphrase from %s: exit %d, stdout %q, stderr %q", tc.name, r.code, r.stdout, r.stderr)
		}
	}
	for _, tc := range []struct {
		name  string
		env   []string
		flags []string
		want  string
	}{
		{"none", []string{"TOKENCAT_PASSPHRASE="}, nil, "--pfx " + clientPFX + " is encrypted and no passphrase was given: pass --passphrase-file FILE or set TOKENCAT_PASSPHRASE"},
		{"wrong, environment", []string{"TOKENCAT_PASSPHRASE=wrong"}, nil, "the passphrase in $TOKENCAT_PASSPHRASE does not decrypt --pfx " + clientPFX},
		{"wrong, file", nil, []string{"--passphrase-file", wrongFile}, "the passphrase in --passphrase-file " + wrongFile + " does not decrypt --pfx " + clientPFX},
		{"file missing", nil, []string{"--passphrase-file", filepath.Join(files, "nope")}, "read passphrase file"},
	} {
		args := append(append(append([]string{}, withPFX...), tc.flags...), "hello")
		r := tokencatEnv(t, 30*time.Second, tc.env, "", args...)
		if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, tc.want) || strings.Contains(r.stderr, "Options.") {
			t.Errorf("send --pfx, passphrase %s: exit %d, stdout %q, stderr %q (want %q)", tc.name, r.code, r.stdout, r.stderr, tc.want)
		}
	}
	// bench too.
	clientKey := writeTestFile(t, files, "client-enc.key", encryptedKey(t, readPair(t, dir, "client"), testPassphrase))
	r := tokencatEnv(t, 30*time.Second, []string{"TOKENCAT_PASSPHRASE="}, "", "bench", "--addr", srv.addr, "--ca", ca,
		"--cert", filepath.Join(dir, "client.crt"), "--key", clientKey, "--count", "1")
	if want := "--key " + clientKey + " is encrypted and no passphrase was given"; r.code != 1 || !strings.Contains(r.stderr, want) || strings.Contains(r.stderr, "Options.") {
		t.Errorf("bench, no passphrase: exit %d, stderr %q; want exit 1 and %q", r.code, r.stderr, want)
	}

	// bench takes the same flags.
	args := []string{"bench", "--addr", srv.addr, "--ca", ca, "--pfx", clientPFX, "--passphrase-file", passFile, "--count", "50", "--json"}
	if r := tokencatEnv(t, time.Minute, []string{"TOKENCAT_PASSPHRASE="}, "", args...); r.code != 0 || !strings.Contains(r.stdout, `"tokens": 50`) {
		t.Errorf("bench --pfx: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

// --passphrase is refused (exit 2) with a message that says why and never
// repeats the passphrase; the other combinations that cannot work are usage
// errors too.
func TestTLSFlagUsageErrors(t *testing.T) {
	t.Parallel()
	dir := certDir(t)
	srv := tlsArgs(dir, "server")
	cli := tlsArgs(dir, "client")
	const secret = "s3cret-on-the-command-line"
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"serve --passphrase", append([]string{"serve", "--listen", "127.0.0.1:0", "--passphrase", secret}, srv...), "--passphrase-file"},
		{"send --passphrase", append([]string{"send", "--addr", "127.0.0.1:1", "--passphrase=" + secret}, cli...), "TOKENCAT_PASSPHRASE"},
		{"bench --passphrase", append([]string{"bench", "--addr", "127.0.0.1:1", "--passphrase", secret}, cli...), "visible to every user"},
		{"bench --self --passphrase", []string{"bench", "--self", "--passphrase", secret}, "visible to every user"},
		{"send --pfx and --cert", append([]string{"send", "--addr", "127.0.0.1:1", "--pfx", "x.pfx"}, cli...), "--pfx replaces --cert and --key"},
		{"serve --pfx and --key", []string{"serve", "--listen", "127.0.0.1:0", "--ca", "ca", "--pfx", "x.pfx", "--key", "k"}, "--pfx replaces --cert and --key"},
		{"send --pfx without --ca", []string{"send", "--addr", "127.0.0.1:1", "--pfx", "x.pfx"}, "missing required flag --ca"},
		{"send --pfx empty", []string{"send", "--addr", "127.0.0.1:1", "--ca", "ca", "--pfx", ""}, "--pfx needs a file"},
		{"serve --allow-common-name", append([]string{"serve", "--listen", "127.0.0.1:0", "--allow-common-name"}, srv...), "flag provided but not defined: -allow-common-name"},
		{"bench --self --pfx", []string{"bench", "--self", "--pfx", "x.pfx"}, "--pfx goes with --addr only"},
		{"bench --baseline --allow-common-name", []string{"bench", "--baseline", "--allow-common-name"}, "--allow-common-name goes with --addr only"},
		{"bench --self --passphrase-file", []string{"bench", "--self", "--passphrase-file", "f"}, "--passphrase-file goes with --addr only"},
		{"bench --self --ca", []string{"bench", "--self", "--ca", "f"}, "--ca goes with --addr only"},
		{"serve unix: without path", append([]string{"serve", "--listen", "unix:"}, srv...), "want unix:PATH with a socket path"},
		{"send bad addr", append([]string{"send", "--addr", "nowhere"}, cli...), "want HOST:PORT or unix:PATH"},
		{"bench bad addr", append([]string{"bench", "--addr", "nowhere"}, cli...), "want HOST:PORT or unix:PATH"},
		{"send port 0", append([]string{"send", "--addr", "127.0.0.1:0"}, cli...), "port 0"},
	}
	for _, c := range cases {
		r := tokencat(t, 30*time.Second, "", c.args...)
		if r.code != 2 {
			t.Errorf("%s: exit %d, want 2\nstderr: %s", c.name, r.code, r.stderr)
			continue
		}
		if !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s: stderr %q does not contain %q", c.name, r.stderr, c.want)
		}
		if strings.Contains(r.stderr, secret) {
			t.Errorf("%s: stderr repeats the passphrase: %q", c.name, r.stderr)
		}
	}
}

func TestTLSFlagsInHelp(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"serve", "send", "bench"} {
		r := runInProcess(t, name, "--help")
		if r.code != 0 {
			t.Fatalf("%s --help: exit %d", name, r.code)
		}
		for _, want := range []string{"--pfx FILE", "--passphrase-file FILE", "$TOKENCAT_PASSPHRASE", "There is no --passphrase", "unix:PATH"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("%s help does not contain %q:\n%s", name, want, r.stdout)
			}
		}
		if strings.Contains(r.stdout, "--passphrase string") || strings.Contains(r.stdout, "refused:") {
			t.Errorf("%s help lists the hidden --passphrase:\n%s", name, r.stdout)
		}
		hasCN := strings.Contains(r.stdout, "--allow-common-name ")
		if want := name != "serve"; hasCN != want {
			t.Errorf("%s help lists --allow-common-name: %v, want %v", name, hasCN, want)
		}
	}
	r := runInProcess(t, "serve", "--help")
	if !strings.Contains(r.stdout, `"listening on unix:PATH"`) {
		t.Errorf("serve help does not give the first line for a Unix socket:\n%s", r.stdout)
	}
}

// certGenDir writes certificates made the way token-server's
// extra/cert-gen.sh makes them (RSA, subject
// "/C=FR/ST=./L=./O=ACME Signing Authority Inc/CN=NAME", no subjectAltName)
// for a server named localhost and a client, as ca.crt, server.crt,
// server.key, client.crt and client.key. cert-gen.sh makes 4096-bit keys;
// 2048 bits keep the test fast.
func certGenDir(t *testing.T) string {
	t.Helper()
	subject := func(cn string) pkix.Name {
		return pkix.Name{Country: []string{"FR"}, Province: []string{"."}, Locality: []string{"."},
			Organization: []string{"ACME Signing Authority Inc"}, CommonName: cn}
	}
	newKey := func() *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	now := time.Now()
	caKey := newKey()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: subject("."),
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		BasicConstraintsValid: true, IsCA: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeTestFile(t, dir, "ca.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
	for i, side := range []string{"server", "client"} {
		cn := map[string]string{"server": "localhost", "client": "client"}[side]
		key := newKey()
		der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
			SerialNumber: big.NewInt(int64(i + 2)), Subject: subject(cn),
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		}, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		writeTestFile(t, dir, side+".crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
		writeTestFile(t, dir, side+".key", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	}
	return dir
}

// With certificates of cert-gen.sh (a Common Name, no subjectAltName), send
// and bench refuse the server's certificate and name --allow-common-name;
// with it they work, by host name and over a Unix socket (checked for
// localhost, as Node does), and never by IP address.
func TestAllowCommonNameFlag(t *testing.T) {
	t.Parallel()
	dir := certGenDir(t)
	srv := startServe(t, dir) // the server accepts the client's CN-only certificate as it is
	_, port, err := net.SplitHostPort(srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	byName := net.JoinHostPort("localhost", port)

	r := mustRun(t, 1, 30*time.Second, "", sendArgs(byName, dir, "--timeout", "10s", "hello")...)
	for _, want := range []string{"legacy Common Name", "tokencat: pass --allow-common-name", "subjectAltName"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("send without --allow-common-name: stderr %q lacks %q", r.stderr, want)
		}
	}
	r = mustRun(t, 0, 30*time.Second, "", sendArgs(byName, dir, "--allow-common-name", "hello", "cn")...)
	if r.stdout != "hello\ncn\n" {
		t.Errorf("send --allow-common-name printed %q", r.stdout)
	}
	r = mustRun(t, 1, 30*time.Second, "", sendArgs(srv.addr, dir, "--allow-common-name", "--timeout", "10s", "hello")...)
	if !strings.Contains(r.stderr, "connect by the host name") {
		t.Errorf("send --allow-common-name by IP address: stderr %q", r.stderr)
	}

	bench := func(addr string, extra ...string) []string {
		args := append([]string{"bench", "--addr", addr, "--count", "50", "--json"}, tlsArgs(dir, "client")...)
		return append(args, extra...)
	}
	r = mustRun(t, 1, time.Minute, "", bench(byName)...)
	if !strings.Contains(r.stderr, "--allow-common-name") {
		t.Errorf("bench without --allow-common-name: stderr %q", r.stderr)
	}
	r = mustRun(t, 0, time.Minute, "", bench(byName, "--allow-common-name")...)
	if !strings.Contains(r.stdout, `"tokens": 50`) {
		t.Errorf("bench --allow-common-name: %q", r.stdout)
	}

	// Over a Unix socket the name checked is localhost.
	usrv := startServeArgs(t, "unix:"+unixSocket(t), tlsArgs(dir, "server")...)
	mustRun(t, 1, 30*time.Second, "", sendArgs(usrv.addr, dir, "--timeout", "10s", "hello")...)
	r = mustRun(t, 0, 30*time.Second, "", sendArgs(usrv.addr, dir, "--allow-common-name", "over unix")...)
	if r.stdout != "over unix\n" {
		t.Errorf("send --allow-common-name over a Unix socket printed %q", r.stdout)
	}
}
