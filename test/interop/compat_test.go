package interop

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
	"software.sslmate.com/src/go-pkcs12"
)

// What existing token-server deployments bring along (issue 14): the
// certificates of its extra/cert-gen.sh (a Common Name, no subjectAltName),
// encrypted keys with a passphrase, and PKCS #12 archives (pfx).

// compatTokens are the tokens each test here sends and expects back.
var compatTokens = [][]byte{[]byte("hello"), {}, []byte("two\nlines\\and a backslash"), {0, 0x5c, 0x0a, 0xff}}

// writeFile writes data to dir/name and returns the path.
func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// ---- certificates as cert-gen.sh makes them ----

// certGenFiles are certificates made the way token-server's extra/cert-gen.sh
// makes them with openssl: an RSA CA (openssl req -x509: basic constraints
// CA:TRUE), and server and client certificates signed by it whose subject is
// "/C=FR/ST=./L=./O=ACME Signing Authority Inc/CN=<name>": a Common Name and
// no subjectAltName, no key usage. cert-gen.sh makes 4096-bit keys; 2048
// bits keep the tests fast.
type certGenFiles struct {
	dir                    string
	ca                     []byte
	serverCert, serverKey  []byte
	clientCert, clientKey  []byte
	serverLeaf, clientLeaf *x509.Certificate
}

func (c certGenFiles) path(name string) string { return filepath.Join(c.dir, name) }

func rsaKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func certGenSubject(cn string) pkix.Name {
	return pkix.Name{Country: []string{"FR"}, Province: []string{"."}, Locality: []string{"."},
		Organization: []string{"ACME Signing Authority Inc"}, CommonName: cn}
}

// newCertGenCerts makes a CA, a server certificate with CN=serverCN and a
// client certificate with CN=client, and writes them to a temporary
// directory as ca.crt, server.crt, server.key, client.crt and client.key
// (keys as PKCS #1 "RSA PRIVATE KEY", as openssl genrsa wrote them).
func newCertGenCerts(t *testing.T, serverCN string) certGenFiles {
	t.Helper()
	now := time.Now()
	caKey := rsaKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: certGenSubject("."),
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
	c := certGenFiles{dir: t.TempDir(), ca: pemBlock("CERTIFICATE", caDER)}
	issue := func(cn string, serial int64) (certPEM, keyPEM []byte, leaf *x509.Certificate) {
		key := rsaKey(t)
		der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: certGenSubject(cn),
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		}, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err = x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return pemBlock("CERTIFICATE", der), pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key)), leaf
	}
	c.serverCert, c.serverKey, c.serverLeaf = issue(serverCN, 2)
	c.clientCert, c.clientKey, c.clientLeaf = issue("client", 3)
	if len(c.serverLeaf.DNSNames)+len(c.serverLeaf.IPAddresses) != 0 {
		t.Fatal("the cert-gen.sh server certificate has subjectAltNames")
	}
	for name, data := range map[string][]byte{
		"ca.crt": c.ca, "server.crt": c.serverCert, "server.key": c.serverKey, "client.crt": c.clientCert, "client.key": c.clientKey,
	} {
		writeFile(t, c.dir, name, data)
	}
	return c
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func (c certGenFiles) serverOptions(allowCN bool) tlsio.Options {
	return tlsio.Options{Key: c.serverKey, Cert: c.serverCert, CA: c.ca, RequestCert: true, AllowCommonName: allowCN}
}

func (c certGenFiles) clientOptions(allowCN bool, serverName string) tlsio.Options {
	return tlsio.Options{Key: c.clientKey, Cert: c.clientCert, CA: c.ca, AllowCommonName: allowCN, ServerName: serverName}
}

// echoGoClient sends compatTokens through a connected Go client and checks
// the echoes, then closes it cleanly.
func echoGoClient(t *testing.T, gc *goClient) {
	t.Helper()
	recv(t, gc.connected, "OnConnect")
	for _, tok := range compatTokens {
		check.True(t, gc.cli.Send(tok), "Send")
		check.Equal(t, tok, recv(t, gc.tokens, "the echo"))
	}
	check.True(t, gc.cli.Close())
	check.False(t, recv(t, gc.closes, "OnClose"), "hadError")
	none(t, gc.errs, "OnError")
}

// echoNodeClient sends compatTokens through a connected client.js and checks
// the echoes, then closes it cleanly.
func echoNodeClient(t *testing.T, nc *nodeClient) {
	t.Helper()
	nc.expect("connect")
	for _, tok := range compatTokens {
		nc.send(tok)
		check.Equal(t, tok, nc.token())
	}
	nc.close()
	check.False(t, nc.expect("close").HadError, "client.js close hadError")
}

// TestCommonNameOnly_NodeServer_GoClient: the original server with
// cert-gen.sh certificates for localhost. A Go client refuses its
// certificate with an error that names AllowCommonName, and with the option
// exchanges tokens with it.
func TestCommonNameOnly_NodeServer_GoClient(t *testing.T) {
	certs := newCertGenCerts(t, "localhost")
	ns := startNodeServerArgs(t, "--key", certs.path("server.key"), "--cert", certs.path("server.crt"), "--ca", certs.path("ca.crt"))
	sys := newSystem(t)

	t.Run("without AllowCommonName", func(t *testing.T) {
		gc := startGoClient(t, sys, ns.port, certs.clientOptions(false, "localhost"))
		err := recv(t, gc.errs, "OnError")
		t.Logf("Go client, cert-gen.sh certificate: %v", err)
		check.ErrorIs(t, err, tlsio.ErrCommonNameOnly)
		check.ErrorIs(t, err, actors.ErrDial)
		check.Contains(t, err.Error(), "tlsio.Options.AllowCommonName")
		check.Contains(t, err.Error(), "x509: certificate relies on legacy Common Name field")
		var verr *tls.CertificateVerificationError
		check.True(t, errors.As(err, &verr), "errors.As *tls.CertificateVerificationError")
		var herr x509.HostnameError
		check.True(t, errors.As(err, &herr), "errors.As x509.HostnameError")
		check.True(t, recv(t, gc.closes, "OnClose"), "hadError")
		check.Empty(t, gc.connected, "OnConnect must not fire")
	})
	t.Run("with AllowCommonName", func(t *testing.T) {
		echoGoClient(t, startGoClient(t, sys, ns.port, certs.clientOptions(true, "localhost")))
	})
	t.Run("with AllowCommonName, by IP address", func(t *testing.T) {
		// Node never compares a Common Name with an IP address, nor does
		// tlsio: the server name must be given.
		gc := startGoClient(t, sys, ns.port, certs.clientOptions(true, ""))
		err := recv(t, gc.errs, "OnError")
		check.ErrorIs(t, err, tlsio.ErrCommonNameOnly)
		check.Contains(t, err.Error(), "ServerName")
		check.True(t, recv(t, gc.closes, "OnClose"), "hadError")
	})
	t.Run("with AllowCommonName, wrong name", func(t *testing.T) {
		gc := startGoClient(t, sys, ns.port, certs.clientOptions(true, "elsewhere.example"))
		err := recv(t, gc.errs, "OnError")
		var herr x509.HostnameError
		check.True(t, errors.As(err, &herr), "want an x509.HostnameError, got %v", err)
		check.False(t, errors.Is(err, tlsio.ErrCommonNameOnly), "the option does not help a wrong name")
		check.True(t, recv(t, gc.closes, "OnClose"), "hadError")
	})
}

// TestCommonNameOnly_GoServer_NodeClient: a Go server with cert-gen.sh
// certificates serves the original client, which checks the Common Name of
// the server certificate itself; the Go server accepts the client's
// certificate (a Common Name only) with or without AllowCommonName, which
// only concerns clients.
func TestCommonNameOnly_GoServer_NodeClient(t *testing.T) {
	certs := newCertGenCerts(t, "localhost")
	sys := newSystem(t)
	nodeArgs := func(port int, more ...string) []string {
		return append([]string{"--host", "127.0.0.1", "--port", strconv.Itoa(port),
			"--key", certs.path("client.key"), "--cert", certs.path("client.crt"), "--ca", certs.path("ca.crt")}, more...)
	}
	for _, allow := range []bool{false, true} {
		t.Run("AllowCommonName "+strconv.FormatBool(allow), func(t *testing.T) {
			gs := startGoServer(t, sys, certs.serverOptions(allow))
			nc := startNodeClientArgs(t, nodeArgs(gs.port, "--servername", "localhost")...)
			echoNodeClient(t, nc)
			c := recv(t, gs.conns, "the Go server's connection")
			st, ok := c.TLSState()
			check.True(t, ok && len(st.VerifiedChains) > 0, "the server verified the client certificate")
			check.Equal(t, "client", st.PeerCertificates[0].Subject.CommonName)
			check.False(t, recv(t, gs.connCloses, "OnConnectionClose"), "hadError")
			none(t, gs.connErrs, "OnConnectionError")
		})
	}
	t.Run("Node by IP address refuses the Common Name too", func(t *testing.T) {
		gs := startGoServer(t, sys, certs.serverOptions(false))
		nc := startNodeClientArgs(t, nodeArgs(gs.port)...)
		evs := nc.until("close")
		t.Logf("client.js by IP address: %v", evs)
		requireErrorThenClose(t, evs)
		var code string
		for _, ev := range evs {
			if ev.Event == "error" {
				code = ev.Code
			}
		}
		check.Equal(t, "ERR_TLS_CERT_ALTNAME_INVALID", code, "client.js error code")
	})
}

// ---- encrypted keys and PKCS #12 ----

const (
	serverPass = "server passphrase"
	clientPass = "client passphrase"
)

// nodeEncryptKey encrypts keyPEM as PKCS #8 with PBES2 (PBKDF2 and
// AES-256-CBC) using Node's crypto module, that is OpenSSL: what current
// openssl writes.
func nodeEncryptKey(t *testing.T, keyPEM []byte, passphrase string) []byte {
	t.Helper()
	node := requireNode(t)
	script := `const crypto = require('crypto'), fs = require('fs');
const key = crypto.createPrivateKey(fs.readFileSync(0));
process.stdout.write(key.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: process.argv[1] }));`
	cmd := exec.Command(node, "-e", script, passphrase)
	cmd.Stdin = bytes.NewReader(keyPEM)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: encrypt key: %v", err)
	}
	b, _ := pem.Decode(out)
	if b == nil || b.Type != "ENCRYPTED PRIVATE KEY" {
		t.Fatalf("node wrote %q, want an ENCRYPTED PRIVATE KEY", out)
	}
	return out
}

// legacyEncryptKey encrypts keyPEM (PKCS #8) in the legacy PEM form
// (Proc-Type: 4,ENCRYPTED, AES-256-CBC), as "openssl ec -aes256" and older
// "openssl genrsa -aes256" write it.
func legacyEncryptKey(t *testing.T, keyPEM []byte, passphrase string) []byte {
	t.Helper()
	b, _ := pem.Decode(keyPEM)
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	var typ string
	var der []byte
	switch k := k.(type) {
	case *ecdsa.PrivateKey:
		typ = "EC PRIVATE KEY"
		if der, err = x509.MarshalECPrivateKey(k); err != nil {
			t.Fatal(err)
		}
	case *rsa.PrivateKey:
		typ, der = "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k)
	default:
		t.Fatalf("key type %T", k)
	}
	block, err := x509.EncryptPEMBlock(rand.Reader, typ, der, []byte(passphrase), x509.PEMCipherAES256) //lint:ignore SA1019 the legacy form is what is tested
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(block)
}

// pfxOf encodes a key and certificate (and the CA) as PKCS #12 with
// go-pkcs12's Modern encoder (PBES2 with AES-256-CBC, HMAC-SHA-256 MAC).
func pfxOf(t *testing.T, keyPEM, certPEM, caPEM []byte, passphrase string) []byte {
	t.Helper()
	kb, _ := pem.Decode(keyPEM)
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	cb, _ := pem.Decode(certPEM)
	leaf, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	ab, _ := pem.Decode(caPEM)
	ca, err := x509.ParseCertificate(ab.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pfx, err := pkcs12.Modern.Encode(key, leaf, []*x509.Certificate{ca}, passphrase)
	if err != nil {
		t.Fatal(err)
	}
	return pfx
}

// TestEncryptedKey_GoServer_NodeClient: a Go server whose key is encrypted
// (PKCS #8 as openssl writes it, the legacy PEM form) or in a PKCS #12
// archive serves the original client, whose own key is encrypted too, or in
// a pfx, with Node's passphrase option.
func TestEncryptedKey_GoServer_NodeClient(t *testing.T) {
	certs := newCerts(t)
	sys := newSystem(t)
	dir := t.TempDir()
	clientKey := writeFile(t, dir, "client-enc.key", nodeEncryptKey(t, certs.ClientKey, clientPass))
	clientPFX := writeFile(t, dir, "client.pfx", pfxOf(t, certs.ClientKey, certs.ClientCert, certs.CACert, clientPass))
	withKey := []string{"--key", clientKey, "--cert", certs.path("client.crt"), "--ca", certs.path("ca.crt"), "--passphrase", clientPass}
	withPFX := []string{"--pfx", clientPFX, "--ca", certs.path("ca.crt"), "--passphrase", clientPass}

	for _, tc := range []struct {
		name string
		tls  tlsio.Options
		node []string
	}{
		{"PKCS #8 key", tlsio.Options{Key: nodeEncryptKey(t, certs.ServerKey, serverPass), Cert: certs.ServerCert}, withKey},
		{"legacy PEM key", tlsio.Options{Key: legacyEncryptKey(t, certs.ServerKey, serverPass), Cert: certs.ServerCert}, withPFX},
		{"PFX", tlsio.Options{PFX: pfxOf(t, certs.ServerKey, certs.ServerCert, certs.CACert, serverPass)}, withKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.tls
			opts.CA, opts.RequestCert, opts.Passphrase = certs.CACert, true, serverPass
			gs := startGoServer(t, sys, opts)
			echoNodeClient(t, startNodeClientArgs(t, append([]string{"--host", "127.0.0.1", "--port", strconv.Itoa(gs.port)}, tc.node...)...))
			check.False(t, recv(t, gs.connCloses, "OnConnectionClose"), "hadError")
			none(t, gs.connErrs, "OnConnectionError")

			// The wrong passphrase: a clear error when the server is made.
			opts.Passphrase = "wrong"
			_, err := actors.NewServer(actors.ServerOptions{Host: "127.0.0.1", TLS: opts, Runtime: actors.Runtime{System: sys}})
			check.ErrorIs(t, err, tlsio.ErrBadPassphrase)
		})
	}
}

// TestEncryptedKey_NodeServer_GoClient: the original server with a pfx and
// passphrase, or an encrypted key in the legacy PEM form, serves a Go client
// whose key is encrypted or in a PKCS #12 archive.
func TestEncryptedKey_NodeServer_GoClient(t *testing.T) {
	certs := newCerts(t)
	sys := newSystem(t)
	dir := t.TempDir()
	serverPFX := writeFile(t, dir, "server.pfx", pfxOf(t, certs.ServerKey, certs.ServerCert, certs.CACert, serverPass))
	serverKey := writeFile(t, dir, "server-enc.key", legacyEncryptKey(t, certs.ServerKey, serverPass))

	for _, tc := range []struct {
		name string
		node []string
		tls  tlsio.Options
	}{
		{"Node pfx, Go PKCS #8 key", []string{"--pfx", serverPFX, "--ca", certs.path("ca.crt")},
			tlsio.Options{Key: nodeEncryptKey(t, certs.ClientKey, clientPass), Cert: certs.ClientCert, CA: certs.CACert}},
		{"Node legacy PEM key, Go PFX", []string{"--key", serverKey, "--cert", certs.path("server.crt"), "--ca", certs.path("ca.crt")},
			tlsio.Options{PFX: pfxOf(t, certs.ClientKey, certs.ClientCert, certs.CACert, clientPass)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := startNodeServerArgs(t, append(tc.node, "--passphrase", serverPass)...)
			opts := tc.tls
			opts.Passphrase = clientPass
			echoGoClient(t, startGoClient(t, sys, ns.port, opts))

			opts.Passphrase = ""
			_, err := actors.NewClient(actors.ClientOptions{Host: "127.0.0.1", Port: ns.port, TLS: opts, Runtime: actors.Runtime{System: sys}})
			check.ErrorIs(t, err, tlsio.ErrBadPassphrase)
		})
	}
}
