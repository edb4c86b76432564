package tlsio

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// tlsTestTimeout bounds every socket operation of these tests.
const tlsTestTimeout = 5 * time.Second

func tlsTestCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), tlsTestTimeout)
	t.Cleanup(cancel)
	return ctx
}

func tlsTestDevCerts(t *testing.T, hosts ...string) *DevCerts {
	t.Helper()
	d, err := GenerateDevCerts(hosts...)
	if err != nil {
		t.Fatalf("GenerateDevCerts: %v", err)
	}
	return d
}

func tlsTestServerConfig(t *testing.T, o Options) *tls.Config {
	t.Helper()
	cfg, err := ServerConfig(o)
	if err != nil {
		t.Fatalf("ServerConfig: %v", err)
	}
	return cfg
}

func tlsTestClientConfig(t *testing.T, o Options) *tls.Config {
	t.Helper()
	cfg, err := ClientConfig(o)
	if err != nil {
		t.Fatalf("ClientConfig: %v", err)
	}
	return cfg
}

// tlsTestListen opens a listener on 127.0.0.1:0 that is closed at cleanup.
func tlsTestListen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := Listen(tlsTestCtx(t), "127.0.0.1:0", ListenConfig{})
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

type tlsTestServerResult struct {
	state tls.ConnectionState
	err   error
}

// tlsTestServe accepts one connection on a fresh listener and runs the server
// handshake with cfg. Its result is sent on the returned channel as soon as
// the handshake ends. After a successful handshake the server writes "ok"
// and reads until the client closes. Cleanup waits for the goroutine.
func tlsTestServe(t *testing.T, cfg *tls.Config) (addr string, res <-chan tlsTestServerResult) {
	t.Helper()
	return tlsTestServeOn(t, tlsTestListen(t), cfg)
}

// tlsTestServeOn is tlsTestServe on a given listener, which it closes at
// cleanup.
func tlsTestServeOn(t *testing.T, ln net.Listener, cfg *tls.Config) (addr string, res <-chan tlsTestServerResult) {
	t.Helper()
	ch := make(chan tlsTestServerResult, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		if err != nil {
			ch <- tlsTestServerResult{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(tlsTestTimeout))
		tc := tls.Server(c, cfg)
		err = Handshake(context.Background(), tc, tlsTestTimeout)
		ch <- tlsTestServerResult{state: tc.ConnectionState(), err: err}
		if err != nil {
			return
		}
		if _, err := tc.Write([]byte("ok")); err != nil {
			return
		}
		io.Copy(io.Discard, tc)
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String(), ch
}

// tlsTestDialAndRead dials addr and reads the server's "ok". With TLS 1.3 a
// client's handshake completes before the server has checked the client
// certificate, so a refusal by the server shows up in the read.
func tlsTestDialAndRead(t *testing.T, addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	t.Helper()
	c, err := Dial(tlsTestCtx(t), addr, cfg, DialConfig{HandshakeTimeout: tlsTestTimeout})
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(tlsTestTimeout))
	buf := make([]byte, 2)
	if _, err := io.ReadFull(c, buf); err != nil {
		return c.ConnectionState(), err
	}
	if string(buf) != "ok" {
		t.Fatalf("read %q, want %q", buf, "ok")
	}
	return c.ConnectionState(), nil
}

func tlsTestServerResultOf(t *testing.T, res <-chan tlsTestServerResult) tlsTestServerResult {
	t.Helper()
	select {
	case r := <-res:
		return r
	case <-time.After(tlsTestTimeout):
		t.Fatal("server did not finish its handshake")
		return tlsTestServerResult{}
	}
}

func TestMutualTLS(t *testing.T) {
	for _, tc := range []struct {
		name string
		max  uint16
	}{
		{"TLS1.3", 0},
		{"TLS1.2", tls.VersionTLS12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := tlsTestDevCerts(t)
			copt := d.ClientOptions()
			if tc.max != 0 {
				copt.TLSConfig = &tls.Config{MaxVersion: tc.max}
			}
			addr, res := tlsTestServe(t, tlsTestServerConfig(t, d.ServerOptions()))
			cs, err := tlsTestDialAndRead(t, addr, tlsTestClientConfig(t, copt))
			if err != nil {
				t.Fatalf("client: %v", err)
			}
			sr := tlsTestServerResultOf(t, res)
			if sr.err != nil {
				t.Fatalf("server: %v", sr.err)
			}
			want := uint16(tls.VersionTLS13)
			if tc.max != 0 {
				want = tc.max
			}
			if cs.Version != want || sr.state.Version != want {
				t.Errorf("versions: client %x server %x, want %x", cs.Version, sr.state.Version, want)
			}
			if len(cs.PeerCertificates) == 0 || cs.PeerCertificates[0].Subject.CommonName != devServerName {
				t.Errorf("client saw peer certificates %v", cs.PeerCertificates)
			}
			if len(cs.VerifiedChains) == 0 {
				t.Error("client: no verified chain")
			}
			if len(sr.state.PeerCertificates) == 0 || sr.state.PeerCertificates[0].Subject.CommonName != "tokenserver client" {
				t.Errorf("server saw peer certificates %v", sr.state.PeerCertificates)
			}
			if len(sr.state.VerifiedChains) == 0 {
				t.Error("server: no verified chain")
			}
		})
	}
}

func TestServerRequiresClientCertificate(t *testing.T) {
	d := tlsTestDevCerts(t)
	addr, res := tlsTestServe(t, tlsTestServerConfig(t, d.ServerOptions()))
	copt := d.ClientOptions()
	copt.Key, copt.Cert = nil, nil
	_, cerr := tlsTestDialAndRead(t, addr, tlsTestClientConfig(t, copt))
	if cerr == nil {
		t.Error("client without certificate: Dial and read succeeded")
	}
	sr := tlsTestServerResultOf(t, res)
	if sr.err == nil {
		t.Fatal("server accepted a client without certificate")
	}
	if !strings.HasPrefix(sr.err.Error(), "tlsio: TLS handshake: ") {
		t.Errorf("server error %q lacks the tlsio prefix", sr.err)
	}
}

func TestServerRefusesClientCertificateFromOtherCA(t *testing.T) {
	d, other := tlsTestDevCerts(t), tlsTestDevCerts(t)
	addr, res := tlsTestServe(t, tlsTestServerConfig(t, d.ServerOptions()))
	copt := d.ClientOptions() // trusts the server
	copt.Key, copt.Cert = other.ClientKey, other.ClientCert
	if _, err := tlsTestDialAndRead(t, addr, tlsTestClientConfig(t, copt)); err == nil {
		t.Error("client with a foreign certificate: Dial and read succeeded")
	}
	sr := tlsTestServerResultOf(t, res)
	var verr *tls.CertificateVerificationError
	if !errors.As(sr.err, &verr) {
		t.Fatalf("server error = %v, want a *tls.CertificateVerificationError", sr.err)
	}
	var uerr x509.UnknownAuthorityError
	if !errors.As(sr.err, &uerr) {
		t.Errorf("server error = %v, want an x509.UnknownAuthorityError", sr.err)
	}
}

func TestClientRefusesServerFromOtherCA(t *testing.T) {
	d, other := tlsTestDevCerts(t), tlsTestDevCerts(t)
	addr, res := tlsTestServe(t, tlsTestServerConfig(t, d.ServerOptions()))
	copt := d.ClientOptions()
	copt.CA = other.CACert
	_, err := tlsTestDialAndRead(t, addr, tlsTestClientConfig(t, copt))
	var uerr x509.UnknownAuthorityError
	if !errors.As(err, &uerr) {
		t.Fatalf("Dial error = %v, want an x509.UnknownAuthorityError", err)
	}
	if !strings.Contains(err.Error(), addr) {
		t.Errorf("Dial error %q does not name %s", err, addr)
	}
	if sr := tlsTestServerResultOf(t, res); sr.err == nil {
		t.Error("server handshake succeeded although the client refused")
	}
}

func TestClientRejectUnauthorizedFalse(t *testing.T) {
	d, other := tlsTestDevCerts(t), tlsTestDevCerts(t)
	addr, res := tlsTestServe(t, tlsTestServerConfig(t, d.ServerOptions()))
	copt := d.ClientOptions()
	copt.CA = other.CACert // does not know the server's CA
	copt.ServerName = "not-in-the-certificate.example"
	copt.RejectUnauthorized = Bool(false)
	cs, err := tlsTestDialAndRead(t, addr, tlsTestClientConfig(t, copt))
	if err != nil {
		t.Fatalf("client with RejectUnauthorized=false: %v", err)
	}
	if len(cs.PeerCertificates) == 0 || len(cs.VerifiedChains) != 0 {
		t.Errorf("peer certificates %d, verified chains %d; want some, none", len(cs.PeerCertificates), len(cs.VerifiedChains))
	}
	if sr := tlsTestServerResultOf(t, res); sr.err != nil {
		t.Fatalf("server: %v", sr.err)
	}
}

func TestServerRejectUnauthorizedFalse(t *testing.T) {
	d, other := tlsTestDevCerts(t), tlsTestDevCerts(t)
	sopt := d.ServerOptions()
	sopt.RejectUnauthorized = Bool(false)
	scfg := tlsTestServerConfig(t, sopt)

	t.Run("no client certificate", func(t *testing.T) {
		addr, res := tlsTestServe(t, scfg)
		copt := d.ClientOptions()
		copt.Key, copt.Cert = nil, nil
		if _, err := tlsTestDialAndRead(t, addr, tlsTestClientConfig(t, copt)); err != nil {
			t.Fatalf("client: %v", err)
		}
		sr := tlsTestServerResultOf(t, res)
		if sr.err != nil {
			t.Fatalf("server: %v", sr.err)
		}
		if n := len(sr.state.PeerCertificates); n != 0 {
			t.Errorf("server saw %d peer certificates, want 0", n)
		}
	})
	t.Run("foreign client certificate", func(t *testing.T) {
		addr, res := tlsTestServe(t, scfg)
		copt := d.ClientOptions()
		copt.Key, copt.Cert = other.ClientKey, other.ClientCert
		if _, err := tlsTestDialAndRead(t, addr, tlsTestClientConfig(t, copt)); err != nil {
			t.Fatalf("client: %v", err)
		}
		sr := tlsTestServerResultOf(t, res)
		if sr.err != nil {
			t.Fatalf("server: %v", sr.err)
		}
		if len(sr.state.PeerCertificates) != 1 || len(sr.state.VerifiedChains) != 0 {
			t.Errorf("server saw %d peer certificates and %d verified chains, want 1 and 0",
				len(sr.state.PeerCertificates), len(sr.state.VerifiedChains))
		}
	})
}

// tlsTestLocalhostOnly returns a server certificate signed by d's CA whose
// only name is the DNS name "localhost" (no IP SANs).
func tlsTestLocalhostOnly(t *testing.T, d *DevCerts) (certPEM, keyPEM []byte) {
	t.Helper()
	cb, _ := pem.Decode(d.CACert)
	kb, _ := pem.Decode(d.CAKey)
	ca, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err = issueLeaf(ca, k.(*ecdsa.PrivateKey), &x509.Certificate{
		Subject:     pkix.Name{CommonName: "localhost only"},
		NotBefore:   time.Now().Add(-time.Hour),
		NotAfter:    time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM
}

func TestDialServerNameDefaultsToDialedHost(t *testing.T) {
	d := tlsTestDevCerts(t)
	cert, key := tlsTestLocalhostOnly(t, d)
	scfg := tlsTestServerConfig(t, Options{Key: key, Cert: cert})
	ccfg := tlsTestClientConfig(t, Options{CA: d.CACert})

	t.Run("name in certificate", func(t *testing.T) {
		addr, res := tlsTestServe(t, scfg)
		_, port, _ := net.SplitHostPort(addr)
		if _, err := tlsTestDialAndRead(t, net.JoinHostPort("localhost", port), ccfg); err != nil {
			t.Fatalf("dial localhost: %v", err)
		}
		if sr := tlsTestServerResultOf(t, res); sr.err != nil {
			t.Fatalf("server: %v", sr.err)
		}
		if ccfg.ServerName != "" {
			t.Errorf("Dial modified cfg.ServerName to %q", ccfg.ServerName)
		}
	})
	t.Run("name not in certificate", func(t *testing.T) {
		addr, res := tlsTestServe(t, scfg) // 127.0.0.1:port
		_, err := tlsTestDialAndRead(t, addr, ccfg)
		var herr x509.HostnameError
		if !errors.As(err, &herr) {
			t.Fatalf("dial %s: err = %v, want an x509.HostnameError", addr, err)
		}
		tlsTestServerResultOf(t, res)
	})
	t.Run("explicit ServerName not in certificate", func(t *testing.T) {
		addr, res := tlsTestServe(t, tlsTestServerConfig(t, d.ServerOptions()))
		copt := d.ClientOptions()
		copt.ServerName = "elsewhere.example"
		_, err := tlsTestDialAndRead(t, addr, tlsTestClientConfig(t, copt))
		var herr x509.HostnameError
		if !errors.As(err, &herr) {
			t.Fatalf("err = %v, want an x509.HostnameError", err)
		}
		tlsTestServerResultOf(t, res)
	})
}

// tlsTestSilentServer accepts connections and never writes; it holds each
// one until the peer closes it.
func tlsTestSilentServer(t *testing.T) string {
	t.Helper()
	ln := tlsTestListen(t)
	tlsTestAcceptLoop(t, ln, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(tlsTestTimeout))
		io.Copy(io.Discard, c)
	})
	return ln.Addr().String()
}

// tlsTestAcceptLoop accepts connections on ln until the test ends, and runs
// handle on each in a goroutine of its own, then closes it. Cleanup closes
// the listener and every connection still open, and waits for the
// goroutines.
func tlsTestAcceptLoop(t *testing.T, ln net.Listener, handle func(net.Conn)) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}

func TestDialHandshakeTimeout(t *testing.T) {
	d := tlsTestDevCerts(t)
	addr := tlsTestSilentServer(t)
	start := time.Now()
	c, err := Dial(tlsTestCtx(t), addr, tlsTestClientConfig(t, d.ClientOptions()), DialConfig{HandshakeTimeout: 200 * time.Millisecond})
	elapsed := time.Since(start)
	if err == nil {
		c.Close()
		t.Fatal("Dial to a silent server succeeded")
	}
	if !errors.Is(err, ErrHandshakeTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want ErrHandshakeTimeout and context.DeadlineExceeded", err)
	}
	if !strings.Contains(err.Error(), addr) {
		t.Errorf("err %q does not name %s", err, addr)
	}
	if elapsed < 150*time.Millisecond || elapsed > 3*time.Second {
		t.Errorf("Dial took %v, want about 200ms", elapsed)
	}
}

// tlsTestServerSide accepts one connection from a raw TCP client and returns
// the server's tls.Conn and the client's raw socket, both closed at cleanup.
func tlsTestServerSide(t *testing.T, cfg *tls.Config) (*tls.Conn, net.Conn) {
	t.Helper()
	ln := tlsTestListen(t)
	client, err := net.DialTimeout("tcp", ln.Addr().String(), tlsTestTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(tlsTestTimeout))
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Server(c, cfg)
	t.Cleanup(func() { tc.Close() })
	return tc, client
}

// A client that connects and says nothing: the server's handshake ends after
// its timeout. If the timeout does not work, the test fails on its own
// deadline (and closes the socket so that the handshake returns) instead of
// hanging until the package's timeout.
func TestHandshakeTimeoutServerSide(t *testing.T) {
	d := tlsTestDevCerts(t)
	tc, _ := tlsTestServerSide(t, tlsTestServerConfig(t, d.ServerOptions()))
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- Handshake(context.Background(), tc, 200*time.Millisecond) }()
	var err error
	select {
	case err = <-done:
	case <-time.After(tlsTestTimeout):
		tc.NetConn().Close() // unblocks the handshake
		<-done
		t.Fatalf("Handshake with a 200ms timeout still running after %v", tlsTestTimeout)
	}
	elapsed := time.Since(start)
	if !errors.Is(err, ErrHandshakeTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrHandshakeTimeout and context.DeadlineExceeded", err)
	}
	if elapsed < 150*time.Millisecond || elapsed > 3*time.Second {
		t.Errorf("Handshake took %v, want about 200ms", elapsed)
	}
}

func TestHandshakeContextEnds(t *testing.T) {
	d := tlsTestDevCerts(t)
	scfg := tlsTestServerConfig(t, d.ServerOptions())

	t.Run("deadline", func(t *testing.T) {
		tc, _ := tlsTestServerSide(t, scfg)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		err := Handshake(ctx, tc, time.Minute)
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrHandshakeTimeout) {
			t.Fatalf("err = %v, want context.DeadlineExceeded and not ErrHandshakeTimeout", err)
		}
	})
	t.Run("canceled", func(t *testing.T) {
		tc, _ := tlsTestServerSide(t, scfg)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := Handshake(ctx, tc, time.Minute)
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrHandshakeTimeout) {
			t.Fatalf("err = %v, want context.Canceled and not ErrHandshakeTimeout", err)
		}
	})
	t.Run("no timeout", func(t *testing.T) {
		tc, _ := tlsTestServerSide(t, scfg)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		err := Handshake(ctx, tc, -1)
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrHandshakeTimeout) {
			t.Fatalf("err = %v, want context.DeadlineExceeded and not ErrHandshakeTimeout", err)
		}
	})
}

func TestHandshakeProtocolError(t *testing.T) {
	d := tlsTestDevCerts(t)
	tc, client := tlsTestServerSide(t, tlsTestServerConfig(t, d.ServerOptions()))
	if _, err := client.Write([]byte("GET / HTTP/1.0\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	err := Handshake(context.Background(), tc, tlsTestTimeout)
	if err == nil || errors.Is(err, ErrHandshakeTimeout) {
		t.Fatalf("err = %v, want a handshake failure", err)
	}
	if !strings.HasPrefix(err.Error(), "tlsio: TLS handshake: ") {
		t.Errorf("err %q lacks the tlsio prefix", err)
	}
	if errors.Unwrap(err) == nil {
		t.Errorf("err %v wraps nothing", err)
	}
}

func TestDialErrors(t *testing.T) {
	ctx := tlsTestCtx(t)
	t.Run("bad address", func(t *testing.T) {
		if _, err := Dial(ctx, "no-port", nil, DialConfig{}); err == nil || !strings.Contains(err.Error(), "no-port") {
			t.Fatalf("err = %v, want an error naming the address", err)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		ln := tlsTestListen(t)
		addr := ln.Addr().String()
		ln.Close()
		_, err := Dial(ctx, addr, &tls.Config{}, DialConfig{})
		var oerr *net.OpError
		if !errors.As(err, &oerr) || !strings.Contains(err.Error(), addr) {
			t.Fatalf("err = %v, want a *net.OpError naming %s", err, addr)
		}
	})
	t.Run("canceled context", func(t *testing.T) {
		addr := tlsTestSilentServer(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := Dial(cctx, addr, &tls.Config{}, DialConfig{}); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
	t.Run("nil config uses system roots", func(t *testing.T) {
		d := tlsTestDevCerts(t)
		addr, res := tlsTestServe(t, tlsTestServerConfig(t, Options{Key: d.ServerKey, Cert: d.ServerCert}))
		_, err := Dial(ctx, addr, nil, DialConfig{})
		var verr *tls.CertificateVerificationError
		if !errors.As(err, &verr) {
			t.Fatalf("err = %v, want a *tls.CertificateVerificationError", err)
		}
		tlsTestServerResultOf(t, res)
	})
}
