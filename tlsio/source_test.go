package tlsio

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// tlsTestEchoServer accepts connections on loopback until the test ends:
// each runs the server handshake with cfg, reports its result on results,
// then echoes what it reads until the client closes.
type tlsTestEchoServer struct {
	addr    string
	results chan tlsTestServerResult
}

func tlsTestEcho(t *testing.T, cfg *tls.Config) *tlsTestEchoServer {
	t.Helper()
	ln := tlsTestListen(t)
	s := &tlsTestEchoServer{addr: ln.Addr().String(), results: make(chan tlsTestServerResult, 32)}
	tlsTestAcceptLoop(t, ln, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(4 * tlsTestTimeout))
		tc := tls.Server(c, cfg)
		err := Handshake(context.Background(), tc, tlsTestTimeout)
		s.results <- tlsTestServerResult{state: tc.ConnectionState(), err: err}
		if err == nil {
			io.Copy(tc, tc)
		}
	})
	return s
}

// result returns the result of the next handshake the server finished.
func (s *tlsTestEchoServer) result(t *testing.T) tlsTestServerResult {
	t.Helper()
	return tlsTestServerResultOf(t, s.results)
}

// tlsTestRoundTrip writes msg on c and reads it back from the echo server.
func tlsTestRoundTrip(c *tls.Conn, msg string) error {
	c.SetDeadline(time.Now().Add(tlsTestTimeout))
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return fmt.Errorf("echoed %q, want %q", buf, msg)
	}
	return nil
}

// dial connects to the echo server with cfg and makes one round trip, so
// that a refusal by the server (which TLS 1.3 tells the client after its
// handshake) is seen. It returns the connection, closed at cleanup, and the
// server's handshake result.
func (s *tlsTestEchoServer) dial(t *testing.T, cfg *tls.Config) (*tls.Conn, tlsTestServerResult, error) {
	t.Helper()
	c, err := Dial(tlsTestCtx(t), s.addr, cfg, DialConfig{HandshakeTimeout: tlsTestTimeout})
	if err != nil {
		// A client that refuses the server: the server's handshake ends
		// too.
		return nil, s.result(t), err
	}
	t.Cleanup(func() { c.Close() })
	err = tlsTestRoundTrip(c, "hello")
	return c, s.result(t), err
}

// tlsTestPeerIs checks that the first peer certificate of cs is want.
func tlsTestPeerIs(t *testing.T, cs tls.ConnectionState, want *x509.Certificate, who string) {
	t.Helper()
	if len(cs.PeerCertificates) == 0 || !cs.PeerCertificates[0].Equal(want) {
		var got string
		if len(cs.PeerCertificates) > 0 {
			got = serialHex(cs.PeerCertificates[0].SerialNumber)
		}
		t.Fatalf("%s saw serial %q, want %s", who, got, serialHex(want.SerialNumber))
	}
}

// tlsTestForceCert makes cfg send its client certificate whatever CAs the
// server asks for (crypto/tls sends none that is not from one of them; a
// hostile client sends it anyway), so that the server's verification is
// what refuses it.
func tlsTestForceCert(cfg *tls.Config) *tls.Config {
	cert := cfg.Certificates[0]
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	return cfg
}

func tlsTestServerSource(t *testing.T, o Options) *ServerSource {
	t.Helper()
	return tlsTestMust[*ServerSource](t)(NewServerSource(o))
}

func tlsTestClientSource(t *testing.T, o Options) *ClientSource {
	t.Helper()
	return tlsTestMust[*ClientSource](t)(NewClientSource(o))
}

// tlsTestMust returns a function that fails the test on a non-nil error and
// returns v otherwise.
func tlsTestMust[T any](t *testing.T) func(v T, err error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// tlsTestReloadCA is a CA with a server and two clients.
type tlsTestReloadCA struct {
	ca                     *tlsTestCA
	server, server2        tlsTestLeaf
	client, client2        tlsTestLeaf
	serverOpt, clientOpt   Options
	server2Opt, client2Opt Options
}

func newReloadCA(t *testing.T, name string) tlsTestReloadCA {
	ca := tlsTestNewCA(t, name, false, nil)
	r := tlsTestReloadCA{
		ca:      ca,
		server:  ca.issue(t, serverLeaf("localhost"), false),
		server2: ca.issue(t, serverLeaf("localhost"), false),
		client:  ca.issue(t, clientLeaf(name+" client"), false),
		client2: ca.issue(t, clientLeaf(name+" client 2"), false),
	}
	r.serverOpt = Options{Key: r.server.keyPEM, Cert: r.server.certPEM, CA: ca.certPEM, RequestCert: true}
	r.server2Opt = Options{Key: r.server2.keyPEM, Cert: r.server2.certPEM, CA: ca.certPEM, RequestCert: true}
	r.clientOpt = Options{Key: r.client.keyPEM, Cert: r.client.certPEM, CA: ca.certPEM, ServerName: "localhost"}
	r.client2Opt = Options{Key: r.client2.keyPEM, Cert: r.client2.certPEM, CA: ca.certPEM, ServerName: "localhost"}
	return r
}

// TestServerSourceRotation: after a Reload, a new handshake sees the new
// server certificate, while a connection made before keeps exchanging data
// with the old one (issue 28).
func TestServerSourceRotation(t *testing.T) {
	r := newReloadCA(t, "rotation CA")
	src := tlsTestServerSource(t, r.serverOpt)
	if info := src.Info(); info.Generation != 1 || !info.Certificate.Equal(r.server.cert) {
		t.Fatalf("Info %+v, want generation 1 with the first certificate", info)
	}
	echo := tlsTestEcho(t, src.Config())

	old, sr, err := echo.dial(t, tlsTestClientConfig(t, r.clientOpt))
	if err != nil || sr.err != nil {
		t.Fatalf("before: client %v, server %v", err, sr.err)
	}
	tlsTestPeerIs(t, old.ConnectionState(), r.server.cert, "the first client")

	if err := src.Reload(r.server2Opt); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if info := src.Info(); info.Generation != 2 || !info.Certificate.Equal(r.server2.cert) {
		t.Fatalf("Info %+v, want generation 2 with the new certificate", info)
	}
	fresh, sr, err := echo.dial(t, tlsTestClientConfig(t, r.clientOpt))
	if err != nil || sr.err != nil {
		t.Fatalf("after: client %v, server %v", err, sr.err)
	}
	tlsTestPeerIs(t, fresh.ConnectionState(), r.server2.cert, "a new client")
	for i := range 20 {
		for name, c := range map[string]*tls.Conn{"old": old, "new": fresh} {
			if err := tlsTestRoundTrip(c, fmt.Sprintf("%s %d", name, i)); err != nil {
				t.Fatalf("%s connection, round trip %d after the reload: %v", name, i, err)
			}
		}
	}
	tlsTestPeerIs(t, old.ConnectionState(), r.server.cert, "the first client, still")
}

// TestSourceRotationToNewCA: a server moved to another CA serves the new
// CA's clients only, a client source moved with it reaches it, and a
// connection of the old CA stays up (issue 28).
func TestSourceRotationToNewCA(t *testing.T) {
	oldCA, newCA := newReloadCA(t, "old CA"), newReloadCA(t, "new CA")
	src := tlsTestServerSource(t, oldCA.serverOpt)
	echo := tlsTestEcho(t, src.Config())
	csrc := tlsTestClientSource(t, oldCA.clientOpt)

	held, sr, err := echo.dial(t, csrc.Config())
	if err != nil || sr.err != nil {
		t.Fatalf("before: client %v, server %v", err, sr.err)
	}
	if err := src.Reload(newCA.serverOpt); err != nil {
		t.Fatalf("Reload: %v", err)
	}

	t.Run("a client of the old CA is refused by the server", func(t *testing.T) {
		o := oldCA.clientOpt
		o.CA = newCA.ca.certPEM // it would accept the server
		_, sr, err := echo.dial(t, tlsTestForceCert(tlsTestClientConfig(t, o)))
		var uerr x509.UnknownAuthorityError
		if err == nil || !errors.As(sr.err, &uerr) {
			t.Fatalf("client %v, server %v; want x509.UnknownAuthorityError on the server", err, sr.err)
		}
	})
	t.Run("the client source still trusts the old CA", func(t *testing.T) {
		_, _, err := echo.dial(t, csrc.Config())
		var uerr x509.UnknownAuthorityError
		if !errors.As(err, &uerr) {
			t.Fatalf("err = %v, want x509.UnknownAuthorityError on the client", err)
		}
	})
	t.Run("the client source moved to the new CA", func(t *testing.T) {
		if err := csrc.Reload(newCA.clientOpt); err != nil {
			t.Fatalf("Reload: %v", err)
		}
		c, sr, err := echo.dial(t, csrc.Config())
		if err != nil || sr.err != nil {
			t.Fatalf("client %v, server %v", err, sr.err)
		}
		tlsTestPeerIs(t, c.ConnectionState(), newCA.server.cert, "the client")
		tlsTestPeerIs(t, sr.state, newCA.client.cert, "the server")
	})
	t.Run("the connection of the old CA stays up", func(t *testing.T) {
		for i := range 10 {
			if err := tlsTestRoundTrip(held, fmt.Sprint("held ", i)); err != nil {
				t.Fatalf("round trip %d: %v", i, err)
			}
		}
		tlsTestPeerIs(t, held.ConnectionState(), oldCA.server.cert, "the held connection")
	})
}

// TestClientSourceRotation: a client's next dial presents its new
// certificate, even through a config taken before the Reload.
func TestClientSourceRotation(t *testing.T) {
	r := newReloadCA(t, "client rotation CA")
	echo := tlsTestEcho(t, tlsTestServerConfig(t, r.serverOpt))
	csrc := tlsTestClientSource(t, r.clientOpt)
	before := csrc.Config()
	if _, sr, err := echo.dial(t, csrc.Config()); err != nil || sr.err != nil {
		t.Fatalf("client %v, server %v", err, sr.err)
	} else {
		tlsTestPeerIs(t, sr.state, r.client.cert, "the server")
	}
	if err := csrc.Reload(r.client2Opt); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	for name, cfg := range map[string]*tls.Config{"a new config": csrc.Config(), "a config taken before": before} {
		_, sr, err := echo.dial(t, cfg)
		if err != nil || sr.err != nil {
			t.Fatalf("%s: client %v, server %v", name, err, sr.err)
		}
		tlsTestPeerIs(t, sr.state, r.client2.cert, "the server, with "+name)
	}
	t.Run("no client certificate", func(t *testing.T) {
		o := r.clientOpt
		o.Key, o.Cert = nil, nil
		if err := csrc.Reload(o); err != nil {
			t.Fatalf("Reload: %v", err)
		}
		_, sr, err := echo.dial(t, csrc.Config())
		if err == nil || sr.err == nil {
			t.Fatalf("client %v, server %v; want refused for want of a certificate", err, sr.err)
		}
		if csrc.Info().Certificate != nil {
			t.Error("Info().Certificate is set without a certificate")
		}
	})
}

// TestServerSourceRevocation: a revoked client fails its handshake with
// ErrRevoked; a Reload with a new list makes Revoked name an established
// connection whose client it now revokes (issue 28).
func TestServerSourceRevocation(t *testing.T) {
	r := newReloadCA(t, "revocation CA")
	o := r.serverOpt
	o.CRL = r.ca.crl(t, r.client2.cert)
	src := tlsTestServerSource(t, o)
	if info := src.Info(); info.Revoked != 1 || info.CRLNextUpdate.Before(time.Now()) {
		t.Fatalf("Info %+v, want 1 revoked serial and a nextUpdate ahead", info)
	}
	echo := tlsTestEcho(t, src.Config())

	_, sr, err := echo.dial(t, tlsTestClientConfig(t, r.client2Opt))
	if err == nil {
		t.Fatal("a revoked client exchanged data")
	}
	tlsTestRevokedBy(t, sr.err, r.client2.cert)

	held, sr, err := echo.dial(t, tlsTestClientConfig(t, r.clientOpt))
	if err != nil || sr.err != nil {
		t.Fatalf("a client that is not revoked: client %v, server %v", err, sr.err)
	}
	heldState := sr.state
	if err := src.Revoked(heldState); err != nil {
		t.Fatalf("Revoked before the new list: %v", err)
	}

	// The new list, in DER, revokes the held client too.
	o.CRL = tlsTestCRL(t, r.ca.cert, r.ca.key, r.client.cert.SerialNumber, r.client2.cert.SerialNumber)
	if err := src.Reload(o); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	tlsTestRevokedBy(t, src.Revoked(heldState), r.client.cert)
	// The source closes nothing: the owner does, on Revoked's word.
	if err := tlsTestRoundTrip(held, "still up"); err != nil {
		t.Fatalf("the held connection: %v", err)
	}
	_, sr, err = echo.dial(t, tlsTestClientConfig(t, r.clientOpt))
	if err == nil {
		t.Fatal("a client revoked by the new list exchanged data")
	}
	tlsTestRevokedBy(t, sr.err, r.client.cert)

	// And without a list nobody is revoked.
	o.CRL = nil
	if err := src.Reload(o); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if err := src.Revoked(heldState); err != nil || src.Info().Revoked != 0 {
		t.Fatalf("Revoked without a list: %v, Info %+v", err, src.Info())
	}
	if _, sr, err := echo.dial(t, tlsTestClientConfig(t, r.client2Opt)); err != nil || sr.err != nil {
		t.Fatalf("without a list: client %v, server %v", err, sr.err)
	}
}

// TestSourceBadReloadKeepsOld: every bad reload is an error that says why,
// and the material in use stays: new handshakes still see the old
// certificate (issue 28).
func TestSourceBadReloadKeepsOld(t *testing.T) {
	r := newReloadCA(t, "bad reload CA")
	other := newReloadCA(t, "another CA")
	src := tlsTestServerSource(t, r.serverOpt)
	echo := tlsTestEcho(t, src.Config())
	copt := r.clientOpt

	const pass = "reload passphrase"
	encrypted := r.server2Opt
	encrypted.Key = tlsTestEncryptPKCS8(t, r.server2.key, pass, pbes2Cases[2])
	with := func(f func(o *Options)) Options {
		o := r.server2Opt
		f(&o)
		return o
	}

	// A file that cannot be read fails while loading, before Reload.
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	for name, b := range map[string][]byte{"server.key": r.server2.keyPEM, "ca.crt": r.ca.certPEM} {
		if err := os.WriteFile(p(name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := LoadServerFiles(p("server.key"), p("server.crt"), p("ca.crt")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("LoadServerFiles of a missing file: err = %v, want fs.ErrNotExist", err)
	}

	for _, tc := range []struct {
		name string
		o    Options
		want error
	}{
		{"truncated certificate", with(func(o *Options) { o.Cert = o.Cert[:len(o.Cert)/2] }), ErrBadPEM},
		{"no certificate", with(func(o *Options) { o.Key, o.Cert = nil, nil }), ErrNoCertificate},
		{"key without certificate", with(func(o *Options) { o.Cert = nil }), ErrIncompleteKeyPair},
		{"key of another certificate", with(func(o *Options) { o.Key = r.server.keyPEM }), ErrKeyMismatch},
		{"wrong passphrase", with(func(o *Options) { *o = encrypted; o.Passphrase = "wrong" }), ErrBadPassphrase},
		{"no passphrase", encrypted, ErrBadPassphrase},
		{"CA not PEM", with(func(o *Options) { o.CA = []byte("garbage") }), ErrBadPEM},
		{"list of another CA", with(func(o *Options) { o.CRL = other.ca.crl(t) }), ErrBadCRL},
		{"GetConfigForClient", with(func(o *Options) {
			o.TLSConfig = &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return nil, nil }}
		}), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := src.Reload(tc.o)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("Reload: err = %v, want %v", err, tc.want)
			}
			if info := src.Info(); info.Generation != 1 || !info.Certificate.Equal(r.server.cert) {
				t.Fatalf("Info %+v after a failed reload, want generation 1 and the first certificate", info)
			}
			c, sr, err := echo.dial(t, tlsTestClientConfig(t, copt))
			if err != nil || sr.err != nil {
				t.Fatalf("client %v, server %v", err, sr.err)
			}
			tlsTestPeerIs(t, c.ConnectionState(), r.server.cert, "a new client")
		})
	}

	// The same source still takes good material.
	good := encrypted
	good.Passphrase = pass
	if err := src.Reload(good); err != nil {
		t.Fatalf("Reload of good material: %v", err)
	}
	c, _, err := echo.dial(t, tlsTestClientConfig(t, copt))
	if err != nil {
		t.Fatal(err)
	}
	tlsTestPeerIs(t, c.ConnectionState(), r.server2.cert, "a new client after a good reload")

	t.Run("client", func(t *testing.T) {
		csrc := tlsTestClientSource(t, r.clientOpt)
		for name, o := range map[string]Options{
			"key of another certificate": {Key: r.client2.keyPEM, Cert: r.client.certPEM, CA: r.ca.certPEM},
			"list of another CA":         {Key: r.client2.keyPEM, Cert: r.client2.certPEM, CA: r.ca.certPEM, CRL: other.ca.crl(t)},
		} {
			if err := csrc.Reload(o); err == nil {
				t.Errorf("%s: Reload succeeded", name)
			}
		}
		if info := csrc.Info(); info.Generation != 1 || !info.Certificate.Equal(r.client.cert) {
			t.Fatalf("Info %+v, want the first material", info)
		}
		_, sr, err := echo.dial(t, csrc.Config())
		if err != nil || sr.err != nil {
			t.Fatalf("client %v, server %v", err, sr.err)
		}
		tlsTestPeerIs(t, sr.state, r.client.cert, "the server")
	})
}

// TestSourceConcurrentReload: handshakes running while the material changes
// each see one whole generation, never a mix or none (run with -race).
func TestSourceConcurrentReload(t *testing.T) {
	r := newReloadCA(t, "concurrent CA")
	src := tlsTestServerSource(t, r.serverOpt)
	echo := tlsTestEcho(t, src.Config())
	done := make(chan struct{})
	reloads := make(chan error, 1)
	go func() {
		opts := []Options{r.server2Opt, r.serverOpt}
		var err error
		for i := 0; err == nil; i++ {
			select {
			case <-done:
				reloads <- nil
				return
			default:
			}
			err = src.Reload(opts[i%2])
		}
		reloads <- err
	}()
	for i := range 8 {
		c, sr, err := echo.dial(t, tlsTestClientConfig(t, r.clientOpt))
		if err != nil || sr.err != nil {
			t.Fatalf("connection %d: client %v, server %v", i, err, sr.err)
		}
		if peer := c.ConnectionState().PeerCertificates[0]; !peer.Equal(r.server.cert) && !peer.Equal(r.server2.cert) {
			t.Fatalf("connection %d saw another certificate", i)
		}
	}
	close(done)
	if err := <-reloads; err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if g := src.Info().Generation; g < 2 {
		t.Errorf("generation %d: the reloads did not run", g)
	}
}

// TestServerSourceConfig: the config of a source can be cloned per
// connection and wrapped, as the actors package does.
func TestServerSourceConfig(t *testing.T) {
	r := newReloadCA(t, "config CA")
	src := tlsTestServerSource(t, r.serverOpt)
	base := src.Config()
	if base.SessionTicketsDisabled != true || base.MinVersion != tls.VersionTLS12 || base.GetConfigForClient == nil {
		t.Fatalf("Config %+v", base)
	}
	var wrapped int
	clone := base.Clone()
	inner := clone.GetConfigForClient
	clone.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		wrapped++
		return inner(h)
	}
	echo := tlsTestEcho(t, clone)
	if _, sr, err := echo.dial(t, tlsTestClientConfig(t, r.clientOpt)); err != nil || sr.err != nil || wrapped != 1 {
		t.Fatalf("client %v, server %v, wrapper called %d times", err, sr.err, wrapped)
	}
	if !bytes.Equal(r.serverOpt.Cert, r.server.certPEM) {
		t.Fatal("Options changed")
	}
}
