package tlsio

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
)

// tlsTestRefusingServer accepts one connection on a fresh listener and
// hands it to refuse; the server's result is sent on the returned channel.
func tlsTestRefusingServer(t *testing.T, refuse func(net.Conn) error) (addr string, res <-chan error) {
	t.Helper()
	ln := tlsTestListen(t)
	ch := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		c, err := ln.Accept()
		if err != nil {
			ch <- err
			return
		}
		ch <- refuse(c)
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String(), ch
}

// A refused client sees a TLS alert that names the cause, not a bare end of
// stream; the server's side reads the hello and ends with its "no room".
func TestRefuseHandshakeSendsAnAlertTheClientNames(t *testing.T) {
	d := tlsTestDevCerts(t)
	addr, res := tlsTestRefusingServer(t, func(c net.Conn) error {
		return RefuseHandshake(context.Background(), c, tlsTestTimeout)
	})
	c, err := Dial(tlsTestCtx(t), addr, tlsTestClientConfig(t, d.ClientOptions()), DialConfig{HandshakeTimeout: tlsTestTimeout})
	if err == nil {
		c.Close()
		t.Fatal("a refused handshake succeeded")
	}
	if !errors.Is(err, ErrHandshakeRefused) {
		t.Fatalf("client error %v, want ErrHandshakeRefused", err)
	}
	if !isRemoteAlert(err, alertInternalError) || errors.Is(err, io.EOF) {
		t.Fatalf("client error %v, want the internal_error alert and no EOF", err)
	}
	if !strings.Contains(err.Error(), "too many connections") || !strings.Contains(err.Error(), addr) {
		t.Errorf("client error %q does not say why, or where", err)
	}
	if err := <-res; !errors.Is(err, errNoRoom) {
		t.Errorf("server side: %v, want the refusal", err)
	}
}

// A bare close, what a refused socket got before, is not taken for a
// refusal: the client sees the end of stream.
func TestABareCloseIsNotARefusal(t *testing.T) {
	d := tlsTestDevCerts(t)
	addr, _ := tlsTestRefusingServer(t, func(c net.Conn) error { return c.Close() })
	c, err := Dial(tlsTestCtx(t), addr, tlsTestClientConfig(t, d.ClientOptions()), DialConfig{HandshakeTimeout: tlsTestTimeout})
	if err == nil {
		c.Close()
		t.Fatal("handshake with a closed socket succeeded")
	}
	if errors.Is(err, ErrHandshakeRefused) {
		t.Fatalf("client error %v taken for a refusal", err)
	}
}

// Another alert (a client certificate the server does not trust) is not
// taken for a refusal either.
func TestOtherAlertsAreNotARefusal(t *testing.T) {
	d, other := tlsTestDevCerts(t), tlsTestDevCerts(t)
	addr, _ := tlsTestServe(t, tlsTestServerConfig(t, d.ServerOptions()))
	opts := other.ClientOptions()
	opts.CA = d.CACert
	_, err := tlsTestDialAndRead(t, addr, tlsTestClientConfig(t, opts))
	if err == nil {
		t.Fatal("a client of another CA was served")
	}
	if errors.Is(err, ErrHandshakeRefused) {
		t.Fatalf("client error %v taken for a refusal", err)
	}
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "remote error" {
		t.Fatalf("client error %v, want a remote alert (the test's premise)", err)
	}
}
