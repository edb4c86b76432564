package delivery

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
	"github.com/tokenserver/tokenserver/wire"
)

// A token/2 session is bound to the certificate of the client that opened
// it: a client with another certificate of the same CA that presents its
// id is refused (CLOSE with the reason, read as wire.ErrRefused; an error
// event with actors.ErrSessionRefused on the server), the session is left
// as it was, and its own client resumes it afterwards.
func TestSessionOfAnotherCertificateIsRefused(t *testing.T) {
	certs, err := tlsio.GenerateDevCerts()
	if err != nil {
		t.Fatal(err)
	}
	other := issueClient(t, certs, "another client")
	refused := make(chan error, 4)
	srv, err := actors.NewServer(actors.ServerOptions{
		Host: "127.0.0.1", TLS: certs.ServerOptions(),
		OnToken: func(tok []byte, c *actors.Connection) { c.Send(tok) },
		OnConnectionError: func(_ *actors.Connection, err error) {
			if errors.Is(err, actors.ErrSessionRefused) {
				refused <- err
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, "server", srv.Shutdown)
	within(t, "the server listening", func() bool { return srv.Addr() != nil })
	addr := srv.Addr().String()
	id := wire.SessionID{7, 7, 7}

	// The session's own client opens it, exchanges a token, and loses its
	// socket (a reset): the server keeps the session.
	own := dialToken2(t, addr, certs.ClientCert, certs.ClientKey)
	if w := greet(t, own, wire.Hello{Session: id, First: 1}); w.Status != wire.SessionNew {
		t.Fatalf("first WELCOME %+v, want a new session", w)
	}
	echo(t, own, "mine")
	reset(own)
	within(t, "the session waiting for its client", func() bool { return srv.Stats().SessionsWaiting == 1 })

	// Another certificate of the same CA, the same session id: refused.
	thief := dialToken2(t, addr, other.cert, other.key)
	_, err = wire.ReadWelcome(thiefHello(t, thief, id))
	var re *wire.RefusedError
	if !errors.Is(err, wire.ErrRefused) || !errors.As(err, &re) || !strings.Contains(re.Reason, "another client") {
		t.Fatalf("the other certificate's HELLO: %v, want wire.ErrRefused saying the session belongs to another client", err)
	}
	thief.Close()
	select {
	case err := <-refused:
		t.Logf("server: %v", err)
	case <-time.After(deadline):
		t.Fatal("no ErrSessionRefused error event on the server")
	}

	// Its own client comes back: resumed where it was.
	back := dialToken2(t, addr, certs.ClientCert, certs.ClientKey)
	defer back.Close()
	w := greet(t, back, wire.Hello{Session: id, Recv: 1, First: 2, Last: 1})
	if w.Status != wire.SessionResumed || w.Recv != 1 {
		t.Fatalf("WELCOME after the refusal %+v, want resumed with 1 token received", w)
	}
	echo(t, back, "still mine")
	if st := srv.Stats(); st.SessionsResumed != 1 || st.SessionsWaiting != 0 {
		t.Errorf("SessionsResumed %d, SessionsWaiting %d; want 1 and 0", st.SessionsResumed, st.SessionsWaiting)
	}
}

// dialToken2 dials addr with a client certificate, offering token/2 only.
func dialToken2(t *testing.T, addr string, certPEM, keyPEM []byte) *tls.Conn {
	t.Helper()
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.Dial("tcp", addr, &tls.Config{
		Certificates: []tls.Certificate{pair}, InsecureSkipVerify: true, // the server is the test's own
		NextProtos: []string{wire.ProtocolToken2},
	})
	if err != nil {
		t.Fatal(err)
	}
	if p := c.ConnectionState().NegotiatedProtocol; p != wire.ProtocolToken2 {
		t.Fatalf("negotiated %q, want token/2", p)
	}
	_ = c.SetDeadline(time.Now().Add(deadline))
	return c
}

func greet(t *testing.T, c *tls.Conn, h wire.Hello) wire.Welcome {
	t.Helper()
	if _, err := c.Write(wire.AppendHello(nil, h)); err != nil {
		t.Fatal(err)
	}
	w, err := wire.ReadWelcome(c)
	if err != nil {
		t.Fatalf("WELCOME: %v", err)
	}
	return w
}

func thiefHello(t *testing.T, c *tls.Conn, id wire.SessionID) *tls.Conn {
	t.Helper()
	if _, err := c.Write(wire.AppendHello(nil, wire.Hello{Session: id, Recv: 1, First: 2, Last: 1})); err != nil {
		t.Fatal(err)
	}
	return c
}

// echo sends a token and reads the server's echo of it (and any ACK before).
func echo(t *testing.T, c *tls.Conn, tok string) {
	t.Helper()
	if _, err := c.Write(wire.AppendData(nil, []byte(tok))); err != nil {
		t.Fatal(err)
	}
	d, _ := wire.NewToken2Decoder(1 << 20)
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("reading the echo of %q: %v", tok, err)
		}
		frames, err := d.AppendFrames(nil, buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range frames {
			if f.Kind == wire.KindToken {
				if string(f.Token) != tok {
					t.Fatalf("echo %q, want %q", f.Token, tok)
				}
				return
			}
		}
	}
}

// reset drops a connection as a network failure does: RST, no close_notify.
func reset(c *tls.Conn) {
	if tc, ok := c.NetConn().(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.NetConn().Close()
}

type leaf struct{ cert, key []byte }

// issueClient issues another client certificate under certs' CA.
func issueClient(t *testing.T, certs *tlsio.DevCerts, cn string) leaf {
	t.Helper()
	cb, _ := pem.Decode(certs.CACert)
	ca, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := pem.Decode(certs.CAKey)
	caKey, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return leaf{pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})}
}
