package tlsio

import (
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestListen(t *testing.T) {
	for _, ka := range []time.Duration{0, -1, 30 * time.Second} {
		ctx := tlsTestCtx(t)
		ln, err := Listen(ctx, "127.0.0.1:0", ListenConfig{KeepAlive: ka})
		if err != nil {
			t.Fatalf("KeepAlive %v: %v", ka, err)
		}
		addr, ok := ln.Addr().(*net.TCPAddr)
		if !ok || addr.Port == 0 || !addr.IP.Equal(net.IPv4(127, 0, 0, 1)) {
			t.Errorf("Addr() = %v", ln.Addr())
		}
		c, err := net.DialTimeout("tcp", addr.String(), tlsTestTimeout)
		if err != nil {
			t.Fatal(err)
		}
		ln.(*net.TCPListener).SetDeadline(time.Now().Add(tlsTestTimeout))
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		c.Close()
		ln.Close()
	}
}

func TestListenErrors(t *testing.T) {
	ln := tlsTestListen(t)
	addr := ln.Addr().String()
	_, err := Listen(tlsTestCtx(t), addr, ListenConfig{})
	if !errors.Is(err, syscall.EADDRINUSE) || !errors.Is(err, ErrAddressInUse) || !strings.Contains(err.Error(), addr) {
		t.Errorf("port in use: err = %v, want EADDRINUSE and ErrAddressInUse naming %s", err, addr)
	}
	if strings.Count(err.Error(), "address already in use") != 1 {
		t.Errorf("port in use: err %q repeats itself", err)
	}
	if _, err := Listen(tlsTestCtx(t), "no-port", ListenConfig{}); err == nil || !strings.HasPrefix(err.Error(), "tlsio: listen no-port: ") {
		t.Errorf("bad address: err = %v", err)
	}
}
