package actors

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/tokenserver/tokenserver/tlsio"
)

// Server.ReloadTLS and Client.ReloadTLS over real TLS sockets on loopback
// (issue 28): rotation with a connection held open across it, rotation to
// a new CA, revocation of a connected client, and bad material that keeps
// the old.

// pki is a CA (made by tlsio.GenerateDevCerts) that issues more
// certificates and revocation lists.
type pki struct {
	caPEM []byte
	ca    *x509.Certificate
	key   crypto.Signer
}

// leaf is a certificate a pki issued, with its key.
type leaf struct {
	cert         *x509.Certificate
	certPEM, key []byte
	signer       crypto.Signer
	serial       string // hexadecimal, as openssl prints it
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	d, err := tlsio.GenerateDevCerts()
	if err != nil {
		t.Fatal(err)
	}
	p := &pki{caPEM: d.CACert}
	block, _ := pem.Decode(d.CACert)
	if p.ca, err = x509.ParseCertificate(block.Bytes); err != nil {
		t.Fatal(err)
	}
	block, _ = pem.Decode(d.CAKey)
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	p.key = k.(crypto.Signer)
	return p
}

// issue signs a fresh certificate for localhost (server) or a client named
// cn, valid for a day.
func (p *pki) issue(t *testing.T, server bool, cn string) leaf {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage, tmpl.DNSNames = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	l := leaf{certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), signer: key}
	if l.cert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	l.serial = fmt.Sprintf("%X", serial)
	return l
}

// serverTLS is a server's options presenting l, requiring clients of p.
func (p *pki) serverTLS(l leaf) tlsio.Options {
	return tlsio.Options{Key: l.key, Cert: l.certPEM, CA: p.caPEM, RequestCert: true}
}

// clientTLS is a client's options presenting l, trusting servers of p.
func (p *pki) clientTLS(l leaf) tlsio.Options {
	return tlsio.Options{Key: l.key, Cert: l.certPEM, CA: p.caPEM, ServerName: "localhost"}
}

// revoke returns a PEM revocation list of p that revokes leaves.
func (p *pki) revoke(t *testing.T, leaves ...leaf) []byte {
	t.Helper()
	now := time.Now()
	list := &x509.RevocationList{Number: big.NewInt(now.UnixNano()), ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour)}
	for _, l := range leaves {
		list.RevokedCertificateEntries = append(list.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: l.cert.SerialNumber, RevocationTime: now, ReasonCode: 1})
	}
	der, err := x509.CreateRevocationList(rand.Reader, list, p.ca, p.key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

// echoServer is a server that echoes every token, with a recorder of its
// events and its log lines.
type echoServer struct {
	*Server
	r    *recorder
	logs logSink
}

// startEcho starts an echoServer with the TLS options o, changed by mod,
// and waits until it listens.
func startEcho(t *testing.T, o tlsio.Options, mod func(*ServerOptions)) *echoServer {
	t.Helper()
	e := &echoServer{r: newRecorder(t), logs: make(logSink, 256)}
	e.Server = e.r.startServer(func(so *ServerOptions) {
		so.TLS = o
		so.OnTokens = func(tokens [][]byte, c *Connection) { c.SendBatch(tokens) }
		so.Runtime.Logger = slog.New(slog.NewTextHandler(e.logs, nil))
		if mod != nil {
			mod(so)
		}
	})
	e.r.next("connect", ONLINE)
	return e
}

// connect connects a client with the TLS options o and returns it with
// its connection on the server.
func (e *echoServer) connect(t *testing.T, o tlsio.Options) (*peer, *Connection) {
	t.Helper()
	p := startPeer(t, e.port(), o)
	recv(t, p.up, "the client's connect event")
	return p, e.r.next("conn", ONLINE).conn
}

func (e *echoServer) port() int { return e.Addr().(*net.TCPAddr).Port }

// logSink takes log lines (slog writes each in one call) without blocking.
type logSink chan string

func (l logSink) Write(b []byte) (int, error) {
	select {
	case l <- string(b):
	default:
	}
	return len(b), nil
}

// find waits for a line that holds every one of words, skipping others.
func (l logSink) find(t *testing.T, words ...string) {
	t.Helper()
	for {
		line := recv(t, (<-chan string)(l), fmt.Sprintf("a log line with %q", words))
		if !slices.ContainsFunc(words, func(w string) bool { return !strings.Contains(line, w) }) {
			return
		}
	}
}

// peer is a Client whose tokens and events go to channels.
type peer struct {
	c      *Client
	up     chan struct{}
	tokens chan string
	errs   chan error
	closes chan bool
}

// startPeer starts a client of port with the TLS options o.
func startPeer(t *testing.T, port int, o tlsio.Options) *peer {
	t.Helper()
	p := &peer{up: make(chan struct{}, 4), tokens: make(chan string, 4096), errs: make(chan error, 16), closes: make(chan bool, 16)}
	c, err := NewClient(ClientOptions{
		Host: "127.0.0.1", Port: port, TLS: o,
		OnConnect: func() { put(t, p.up, struct{}{}) },
		OnToken:   func(tok []byte, _ *Connection) { put(t, p.tokens, string(tok)) },
		OnError:   func(err error) { put(t, p.errs, err) },
		OnClose:   func(had bool) { put(t, p.closes, had) },
	})
	if err != nil {
		t.Fatal(err)
	}
	p.c = c
	t.Cleanup(func() { shutdownWithin(t, "client", c.Shutdown) })
	return p
}

// serverSerial is the serial number of the certificate the server
// presented to p's connection.
func (p *peer) serverSerial(t *testing.T) string {
	t.Helper()
	conn := p.c.Connection()
	if conn == nil {
		t.Fatal("the client has no connection")
	}
	st, ok := conn.TLSState()
	if !ok || len(st.PeerCertificates) == 0 {
		t.Fatal("the client's connection has no server certificate")
	}
	return fmt.Sprintf("%X", st.PeerCertificates[0].SerialNumber)
}

// exchange sends n tokens named by label and checks that each comes back,
// in order.
func (p *peer) exchange(t *testing.T, label string, n int) {
	t.Helper()
	p.send(t, label, n)
	p.expect(t, label, n)
}

func (p *peer) send(t *testing.T, label string, n int) {
	t.Helper()
	for i := range n {
		if !p.c.Send(fmt.Appendf(nil, "%s %d", label, i)) {
			t.Fatalf("Send of %s %d refused", label, i)
		}
	}
}

func (p *peer) expect(t *testing.T, label string, n int) {
	t.Helper()
	for i := range n {
		if got, want := recv(t, p.tokens, "an echo"), fmt.Sprintf("%s %d", label, i); got != want {
			t.Fatalf("echo %q, want %q", got, want)
		}
	}
}

// calm checks that p had no error and no close.
func (p *peer) calm(t *testing.T) {
	t.Helper()
	select {
	case err := <-p.errs:
		t.Fatalf("client error: %v", err)
	case had := <-p.closes:
		t.Fatalf("client closed (hadError %v)", had)
	default:
	}
}

// clientSerial is the serial number of the client certificate of a
// server's connection.
func clientSerial(c *Connection) string {
	st, ok := c.TLSState()
	if !ok || len(st.PeerCertificates) == 0 {
		return ""
	}
	return fmt.Sprintf("%X", st.PeerCertificates[0].SerialNumber)
}

// TestServerReloadTLSRotation: a connection held open across a rotation
// keeps exchanging tokens, tokens in flight included, with the certificate
// of its handshake; a new connection sees the new serial number; nothing
// closes.
func TestServerReloadTLSRotation(t *testing.T) {
	p := newPKI(t)
	old, rotated, cl := p.issue(t, true, "server 1"), p.issue(t, true, "server 2"), p.issue(t, false, "client")
	s := startEcho(t, p.serverTLS(old), nil)

	held, _ := s.connect(t, p.clientTLS(cl))
	if got := held.serverSerial(t); got != old.serial {
		t.Fatalf("before the reload the client saw serial %s, want %s", got, old.serial)
	}
	held.exchange(t, "before", 50)

	held.send(t, "across", 200) // in flight while the material changes
	if err := s.ReloadTLS(p.serverTLS(rotated)); err != nil {
		t.Fatalf("ReloadTLS: %v", err)
	}
	held.expect(t, "across", 200)
	held.exchange(t, "after", 50)
	if got := held.serverSerial(t); got != old.serial {
		t.Fatalf("the held connection's server serial is %s, want %s (its handshake's)", got, old.serial)
	}

	info := s.TLSInfo()
	if info.Generation != 2 || info.Certificate == nil || !info.Certificate.Equal(rotated.cert) {
		t.Fatalf("TLSInfo after the reload: generation %d, certificate %v; want 2 and the new one", info.Generation, info.Certificate)
	}
	fresh, _ := s.connect(t, p.clientTLS(cl))
	if got := fresh.serverSerial(t); got != rotated.serial {
		t.Fatalf("a new connection saw serial %s, want the new %s", got, rotated.serial)
	}
	fresh.exchange(t, "fresh", 10)
	held.exchange(t, "still", 10)
	held.calm(t)
	fresh.calm(t)
	s.r.quiet(100 * time.Millisecond)
	s.logs.find(t, "TLS material reloaded", "serial="+rotated.serial)
}

// TestReloadTLSToNewCA: the server moves to another CA. The connection
// made under the old one stays up; a client of the old CA can no longer
// connect; a client that reloads the new CA's material connects on its
// next dial and presents its new certificate.
func TestReloadTLSToNewCA(t *testing.T) {
	a, b := newPKI(t), newPKI(t)
	serverA, serverB := a.issue(t, true, "server A"), b.issue(t, true, "server B")
	clientA, clientB := a.issue(t, false, "client A"), b.issue(t, false, "client B")
	s := startEcho(t, a.serverTLS(serverA), nil)
	held, _ := s.connect(t, a.clientTLS(clientA))
	held.exchange(t, "A", 20)

	if err := s.ReloadTLS(b.serverTLS(serverB)); err != nil {
		t.Fatalf("ReloadTLS to CA B: %v", err)
	}
	held.exchange(t, "A after", 20)

	// A client of CA A refuses the server's new certificate.
	stale := startPeer(t, s.port(), a.clientTLS(clientA))
	err := recv(t, stale.errs, "the error of a client of the old CA")
	var unknown x509.UnknownAuthorityError
	if !errors.Is(err, ErrDial) || !errors.As(err, &unknown) {
		t.Fatalf("client of the old CA: %v, want ErrDial with x509.UnknownAuthorityError", err)
	}
	if e := s.r.next("connError", ONLINE); !errors.Is(e.err, ErrHandshake) {
		t.Fatalf("server: %v, want ErrHandshake", e.err)
	}
	s.r.next("connClose", ONLINE)

	// The held client takes CA B's material: its connection keeps its
	// own, its next dial uses the new one.
	if err := held.c.ReloadTLS(b.clientTLS(clientB)); err != nil {
		t.Fatalf("Client.ReloadTLS: %v", err)
	}
	if got := held.c.TLSInfo(); got.Generation != 2 || !got.Certificate.Equal(clientB.cert) {
		t.Fatalf("Client.TLSInfo: generation %d, want 2 with client B's certificate", got.Generation)
	}
	held.exchange(t, "A after client reload", 20)
	held.calm(t)
	if !held.c.Close() {
		t.Fatal("Close returned false")
	}
	if had := recv(t, held.closes, "the client's close"); had {
		t.Fatal("close(hadError true), want a clean close")
	}
	if e := s.r.next("connClose", ONLINE); e.had {
		t.Fatal("server saw close(hadError true), want a clean close")
	}
	if !held.c.Connect(0) {
		t.Fatal("Connect returned false")
	}
	recv(t, held.up, "the reconnect")
	e := s.r.next("conn", ONLINE)
	if got := clientSerial(e.conn); got != clientB.serial {
		t.Fatalf("the server saw client serial %s, want client B's %s", got, clientB.serial)
	}
	if got := held.serverSerial(t); got != serverB.serial {
		t.Fatalf("the client saw server serial %s, want server B's %s", got, serverB.serial)
	}
	held.exchange(t, "B", 20)
}

// TestServerReloadTLSRevokesConnectedClient: a reload whose list revokes a
// connected client closes its connection with an error that matches
// tlsio.ErrRevoked (naming its serial), then close; the other connection
// goes on untouched; the revoked client can no longer connect.
func TestServerReloadTLSRevokesConnectedClient(t *testing.T) {
	p := newPKI(t)
	srv, bad, good := p.issue(t, true, "server"), p.issue(t, false, "compromised"), p.issue(t, false, "trusted")
	s := startEcho(t, p.serverTLS(srv), nil)
	victim, victimConn := s.connect(t, p.clientTLS(bad))
	other, _ := s.connect(t, p.clientTLS(good))
	victim.exchange(t, "victim", 10)
	other.exchange(t, "other", 10)
	// token/2: the echoes are the server's until the victim acknowledges
	// them; else they would be reported maybe sent when it is cut.
	within(t, deadline, "the victim's acknowledgements", func() bool { return victimConn.Queued() == 0 })

	o := p.serverTLS(srv)
	o.CRL = p.revoke(t, bad)
	if err := s.ReloadTLS(o); err != nil {
		t.Fatalf("ReloadTLS with a revocation list: %v", err)
	}
	e := s.r.next("connError", ONLINE)
	var rev *tlsio.RevokedError
	if e.conn != victimConn || !errors.Is(e.err, tlsio.ErrRevoked) || !errors.As(e.err, &rev) {
		t.Fatalf("error event %v on connection %d, want ErrRevoked on the revoked client's connection %d", e.err, e.conn.ID(), victimConn.ID())
	}
	if got := fmt.Sprintf("%X", rev.Serial); got != bad.serial {
		t.Fatalf("RevokedError names serial %s, want %s", got, bad.serial)
	}
	if e := s.r.next("connClose", ONLINE); e.conn != victimConn || !e.had {
		t.Fatalf("close event %v, want close(hadError true) of the revoked client's connection", e)
	}
	recv(t, victim.closes, "the revoked client's close")

	other.exchange(t, "other after", 50)
	other.calm(t)
	if n := len(s.Connections()); n != 1 {
		t.Fatalf("%d connections left, want 1", n)
	}

	// The revoked client cannot come back: its handshake fails on the
	// server with the same error.
	startPeer(t, s.port(), p.clientTLS(bad))
	if e := s.r.next("connError", ONLINE); !errors.Is(e.err, ErrHandshake) || !errors.Is(e.err, tlsio.ErrRevoked) {
		t.Fatalf("new handshake of the revoked client: %v, want ErrHandshake and ErrRevoked", e.err)
	}
	s.r.next("connClose", ONLINE)
	other.exchange(t, "other at last", 10)
	s.r.quiet(100 * time.Millisecond)
	s.logs.find(t, "now revoked", "connections=1")
}

// TestServerReloadTLSRevokesHandshakeUnderWay: a client whose handshake
// verified it against the old lists, and that comes up only after a reload
// revoked it, is closed as it comes up (it was never among the connections
// the reload checked).
func TestServerReloadTLSRevokesHandshakeUnderWay(t *testing.T) {
	p := newPKI(t)
	srv, late, bystander := p.issue(t, true, "server"), p.issue(t, false, "late"), p.issue(t, false, "bystander")
	verifying, hold := make(chan struct{}, 1), make(chan struct{})
	o := p.serverTLS(srv)
	// Runs in the handshake after the revocation check: holds the late
	// client's handshake between its verification and its end.
	o.TLSConfig = &tls.Config{VerifyConnection: func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) > 0 && cs.PeerCertificates[0].Equal(late.cert) {
			put(t, verifying, struct{}{})
			select {
			case <-hold:
			case <-time.After(3 * deadline):
				t.Errorf("the late client's handshake was held for %v", 3*deadline)
			}
		}
		return nil
	}}
	s := startEcho(t, o, func(so *ServerOptions) { so.Limits.HandshakeTimeout = 4 * deadline })
	release := sync.OnceFunc(func() { close(hold) })
	t.Cleanup(release) // before the server's shutdown, which waits for the handshake

	lateClient := startPeer(t, s.port(), p.clientTLS(late))
	recv(t, verifying, "the late client's verification")
	o.CRL = p.revoke(t, late)
	if err := s.ReloadTLS(o); err != nil {
		t.Fatalf("ReloadTLS: %v", err)
	}
	// A connection made after the reload comes up after the server actor
	// has handled it.
	_, conn := s.connect(t, p.clientTLS(bystander))
	release()
	if got := clientSerial(conn); got != bystander.serial {
		t.Fatalf("connection of serial %s came up, want the bystander's", got)
	}
	e := s.r.next("connError", ONLINE)
	if !errors.Is(e.err, ErrHandshake) || !errors.Is(e.err, tlsio.ErrRevoked) || clientSerial(e.conn) != late.serial {
		t.Fatalf("error event %v, want ErrHandshake and ErrRevoked on the late client's connection", e)
	}
	s.r.next("connClose", ONLINE)
	recv(t, lateClient.closes, "the late client's close")
	if n := len(s.Connections()); n != 1 {
		t.Fatalf("%d connections, want 1 (the bystander's)", n)
	}
	// Counted as the handshake failure it is, not as a connection opened.
	if st := s.Stats(); st.Opened != 1 || st.HandshakeFailures[CauseCertificate] != 1 {
		t.Fatalf("Stats: opened %d, handshake failures %v; want 1 and one of cause %s", st.Opened, st.HandshakeFailures, CauseCertificate)
	}
}

// TestServerReloadTLSBadMaterialKeepsOld: each kind of bad material is an
// error that says why, is logged, and changes nothing: the held connection
// goes on, a new one sees the old certificate.
func TestServerReloadTLSBadMaterialKeepsOld(t *testing.T) {
	p, other := newPKI(t), newPKI(t)
	srv, srv2, cl := p.issue(t, true, "server"), p.issue(t, true, "server 2"), p.issue(t, false, "client")
	pfx, err := pkcs12.Modern.Encode(srv2.signer, srv2.cert, nil, "right passphrase")
	if err != nil {
		t.Fatal(err)
	}
	good := p.serverTLS(srv)
	with := func(mod func(*tlsio.Options)) tlsio.Options {
		o := p.serverTLS(srv2)
		mod(&o)
		return o
	}
	cases := []struct {
		name string
		o    tlsio.Options
		want error
	}{
		{"key of another certificate", with(func(o *tlsio.Options) { o.Key = srv.key }), tlsio.ErrKeyMismatch},
		{"wrong passphrase", with(func(o *tlsio.Options) { o.Key, o.Cert, o.PFX, o.Passphrase = nil, nil, pfx, "wrong" }), tlsio.ErrBadPassphrase},
		{"certificate not PEM", with(func(o *tlsio.Options) { o.Cert = []byte("not a certificate") }), tlsio.ErrBadPEM},
		{"CA not PEM", with(func(o *tlsio.Options) {
			o.CA = []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
		}), tlsio.ErrBadPEM},
		{"key without certificate", with(func(o *tlsio.Options) { o.Cert = nil }), tlsio.ErrIncompleteKeyPair},
		{"no certificate at all", with(func(o *tlsio.Options) { o.Key, o.Cert = nil, nil }), tlsio.ErrNoCertificate},
		{"list not a CRL", with(func(o *tlsio.Options) { o.CRL = []byte("garbage") }), tlsio.ErrBadCRL},
		{"list of another CA", with(func(o *tlsio.Options) { o.CRL = other.revoke(t, cl) }), tlsio.ErrBadCRL},
	}
	s := startEcho(t, good, nil)
	held, _ := s.connect(t, p.clientTLS(cl))
	for i, tc := range cases {
		err := s.ReloadTLS(tc.o)
		if !errors.Is(err, tc.want) {
			t.Fatalf("%s: ReloadTLS = %v, want %v", tc.name, err, tc.want)
		}
		s.logs.find(t, "TLS reload refused")
		if info := s.TLSInfo(); info.Generation != 1 || !info.Certificate.Equal(srv.cert) {
			t.Fatalf("%s: TLSInfo generation %d, want 1 with the old certificate", tc.name, info.Generation)
		}
		held.exchange(t, tc.name, 10)
		fresh, _ := s.connect(t, p.clientTLS(cl))
		if got := fresh.serverSerial(t); got != srv.serial {
			t.Fatalf("%s: a new connection saw serial %s, want the old %s", tc.name, got, srv.serial)
		}
		fresh.exchange(t, fmt.Sprint("fresh ", i), 3)
		fresh.c.Close()
		s.r.next("connClose", ONLINE)
	}
	held.calm(t)
	// And a good reload after them all works.
	if err := s.ReloadTLS(p.serverTLS(srv2)); err != nil {
		t.Fatalf("good ReloadTLS after the bad ones: %v", err)
	}
	if fresh, _ := s.connect(t, p.clientTLS(cl)); fresh.serverSerial(t) != srv2.serial {
		t.Fatalf("after a good reload a new connection saw serial %s, want %s", fresh.serverSerial(t), srv2.serial)
	}
}

// TestReloadTLSRefusedWithGetConfigForClient: a server whose TLSConfig
// decides each handshake's material cannot reload; it goes on serving.
func TestReloadTLSRefusedWithGetConfigForClient(t *testing.T) {
	p := newPKI(t)
	srv, cl := p.issue(t, true, "server"), p.issue(t, false, "client")
	o := p.serverTLS(srv)
	o.TLSConfig = &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return nil, nil }}
	s := startEcho(t, o, nil)
	if err := s.ReloadTLS(p.serverTLS(p.issue(t, true, "server 2"))); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("ReloadTLS = %v, want ErrInvalidOptions", err)
	}
	if info := s.TLSInfo(); !info.Certificate.Equal(srv.cert) {
		t.Fatal("TLSInfo does not name the server's certificate")
	}
	c, _ := s.connect(t, p.clientTLS(cl))
	if got := c.serverSerial(t); got != srv.serial {
		t.Fatalf("serial %s, want %s", got, srv.serial)
	}
	c.exchange(t, "fixed", 3)
}

// A server whose GetConfigForClient gives each handshake its certificate
// needs none in its options: it starts, TLSInfo names no certificate, and
// clients are served with the hook's.
func TestGetConfigForClientWithoutCertificate(t *testing.T) {
	p := newPKI(t)
	srv, cl := p.issue(t, true, "server"), p.issue(t, false, "client")
	pair, err := tls.X509KeyPair(srv.certPEM, srv.key)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(p.ca)
	hook := &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: roots, ClientAuth: tls.RequireAndVerifyClientCert}
	o := tlsio.Options{CA: p.caPEM, RequestCert: true, TLSConfig: &tls.Config{
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return hook, nil },
	}}
	s := startEcho(t, o, nil)
	if info := s.TLSInfo(); info.Certificate != nil || info.Generation != 1 {
		t.Fatalf("TLSInfo = certificate %v, generation %d; want none, 1", info.Certificate, info.Generation)
	}
	c, _ := s.connect(t, p.clientTLS(cl))
	if got := c.serverSerial(t); got != srv.serial {
		t.Fatalf("serial %s, want %s (the hook's)", got, srv.serial)
	}
	c.exchange(t, "hooked", 3)
}
