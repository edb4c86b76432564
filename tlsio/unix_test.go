package tlsio

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tlsTestSocketPath returns a socket path in a fresh temporary directory.
func tlsTestSocketPath(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ts.sock")
	if len(p) > 100 {
		t.Skipf("temporary directory too deep for a Unix socket path: %s", p)
	}
	return p
}

// tlsTestListenUnix listens on path; the listener is closed at cleanup.
func tlsTestListenUnix(t *testing.T, path string) net.Listener {
	t.Helper()
	ln, err := ListenUnix(tlsTestCtx(t), path, ListenConfig{})
	if err != nil {
		t.Fatalf("ListenUnix: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// tlsTestDialUnixAndRead is tlsTestDialAndRead over a Unix socket.
func tlsTestDialUnixAndRead(t *testing.T, path string, cfg *tls.Config) (tls.ConnectionState, error) {
	t.Helper()
	c, err := DialUnix(tlsTestCtx(t), path, cfg, DialConfig{HandshakeTimeout: tlsTestTimeout})
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

func TestUnixMutualTLS(t *testing.T) {
	d := tlsTestDevCerts(t)
	path := tlsTestSocketPath(t)
	ln := tlsTestListenUnix(t, path)
	if a, ok := ln.Addr().(*net.UnixAddr); !ok || a.Name != path || a.Net != "unix" {
		t.Errorf("Addr() = %#v", ln.Addr())
	}
	_, res := tlsTestServeOn(t, ln, tlsTestServerConfig(t, d.ServerOptions()))
	cs, err := tlsTestDialUnixAndRead(t, path, tlsTestClientConfig(t, d.ClientOptions()))
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	sr := tlsTestServerResultOf(t, res)
	if sr.err != nil {
		t.Fatalf("server: %v", sr.err)
	}
	// No host: the server name is "localhost", as in Node.
	if cs.ServerName != "localhost" || sr.state.ServerName != "localhost" || len(cs.VerifiedChains) == 0 || len(sr.state.VerifiedChains) == 0 {
		t.Errorf("server names %q/%q, verified chains %d/%d", cs.ServerName, sr.state.ServerName, len(cs.VerifiedChains), len(sr.state.VerifiedChains))
	}
}

func TestDialUnixServerName(t *testing.T) {
	d := tlsTestDevCerts(t, "tokens.example")
	scfg := tlsTestServerConfig(t, d.ServerOptions())
	for _, tc := range []struct {
		serverName string
		ok         bool
	}{
		{"tokens.example", true},
		{"elsewhere.example", false},
	} {
		path := tlsTestSocketPath(t)
		_, res := tlsTestServeOn(t, tlsTestListenUnix(t, path), scfg)
		copt := d.ClientOptions()
		copt.ServerName = tc.serverName
		cs, err := tlsTestDialUnixAndRead(t, path, tlsTestClientConfig(t, copt))
		tlsTestServerResultOf(t, res)
		if tc.ok {
			if err != nil || cs.ServerName != tc.serverName {
				t.Errorf("ServerName %q: %v (state %q)", tc.serverName, err, cs.ServerName)
			}
			continue
		}
		var herr x509.HostnameError
		if !errors.As(err, &herr) || !strings.Contains(err.Error(), path) {
			t.Errorf("ServerName %q: err = %v, want an x509.HostnameError naming %s", tc.serverName, err, path)
		}
	}
}

// TestDialUnixCommonNameOnly: a cert-gen.sh certificate for localhost over a
// Unix socket, with AllowCommonName and the default server name.
func TestDialUnixCommonNameOnly(t *testing.T) {
	s := newCNSetup(t)
	for _, allow := range []bool{false, true} {
		path := tlsTestSocketPath(t)
		_, res := tlsTestServeOn(t, tlsTestListenUnix(t, path), tlsTestServerConfig(t, s.serverOptions()))
		_, err := tlsTestDialUnixAndRead(t, path, tlsTestClientConfig(t, s.clientOptions(allow, "")))
		tlsTestServerResultOf(t, res)
		if allow && err != nil {
			t.Errorf("AllowCommonName: %v", err)
		}
		if !allow && !errors.Is(err, ErrCommonNameOnly) {
			t.Errorf("without AllowCommonName: err = %v, want ErrCommonNameOnly", err)
		}
	}
}

func TestListenUnixRemovesItsFileOnClose(t *testing.T) {
	path := tlsTestSocketPath(t)
	ln, err := ListenUnix(tlsTestCtx(t), path, ListenConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Type() != fs.ModeSocket {
		t.Fatalf("socket file: %v, %v", fi, err)
	}
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("socket file after Close: err = %v, want fs.ErrNotExist", err)
	}
}

// tlsTestStaleSocket leaves a socket file at path that nothing listens on,
// as a server that crashed does.
func tlsTestStaleSocket(t *testing.T, path string) {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("stale socket: %v", err)
	}
}

func TestListenUnixStaleSocket(t *testing.T) {
	d := tlsTestDevCerts(t)
	path := tlsTestSocketPath(t)
	tlsTestStaleSocket(t, path)

	// Dialing a stale socket is refused.
	_, err := DialUnix(tlsTestCtx(t), path, tlsTestClientConfig(t, d.ClientOptions()), DialConfig{})
	if !errors.Is(err, syscall.ECONNREFUSED) || !strings.Contains(err.Error(), path) {
		t.Errorf("DialUnix to a stale socket: err = %v, want ECONNREFUSED naming %s", err, path)
	}

	// Listening replaces it.
	ln := tlsTestListenUnix(t, path)
	_, res := tlsTestServeOn(t, ln, tlsTestServerConfig(t, d.ServerOptions()))
	if _, err := tlsTestDialUnixAndRead(t, path, tlsTestClientConfig(t, d.ClientOptions())); err != nil {
		t.Fatalf("client: %v", err)
	}
	if sr := tlsTestServerResultOf(t, res); sr.err != nil {
		t.Fatalf("server: %v", sr.err)
	}
}

func TestListenUnixInUse(t *testing.T) {
	d := tlsTestDevCerts(t)
	t.Run("a server listens", func(t *testing.T) {
		path := tlsTestSocketPath(t)
		ln := tlsTestListenUnix(t, path)
		_, err := ListenUnix(tlsTestCtx(t), path, ListenConfig{})
		if !errors.Is(err, ErrAddressInUse) || !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), "a server is listening") {
			t.Fatalf("err = %v, want ErrAddressInUse and EADDRINUSE", err)
		}
		// The first listener and its file are untouched: it still serves,
		// after accepting (and dropping) the probe connection.
		probe, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		probe.Close()
		_, res := tlsTestServeOn(t, ln, tlsTestServerConfig(t, d.ServerOptions()))
		if _, err := tlsTestDialUnixAndRead(t, path, tlsTestClientConfig(t, d.ClientOptions())); err != nil {
			t.Fatalf("client: %v", err)
		}
		if sr := tlsTestServerResultOf(t, res); sr.err != nil {
			t.Fatalf("server: %v", sr.err)
		}
	})
	t.Run("not a socket", func(t *testing.T) {
		path := tlsTestSocketPath(t)
		if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := ListenUnix(tlsTestCtx(t), path, ListenConfig{})
		if !errors.Is(err, ErrAddressInUse) || !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), "not a socket") {
			t.Fatalf("err = %v, want ErrAddressInUse saying it is not a socket", err)
		}
		if b, err := os.ReadFile(path); err != nil || string(b) != "precious" {
			t.Fatalf("the file was changed: %q, %v", b, err)
		}
	})
}

func TestListenUnixAbstract(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skipf("abstract Unix sockets are Linux only (GOOS %s)", runtime.GOOS)
	}
	d := tlsTestDevCerts(t)
	name := "@tokenserver-tlsio-test-" + filepath.Base(t.TempDir())
	ln := tlsTestListenUnix(t, name)
	_, res := tlsTestServeOn(t, ln, tlsTestServerConfig(t, d.ServerOptions()))
	if _, err := tlsTestDialUnixAndRead(t, name, tlsTestClientConfig(t, d.ClientOptions())); err != nil {
		t.Fatalf("client: %v", err)
	}
	if sr := tlsTestServerResultOf(t, res); sr.err != nil {
		t.Fatalf("server: %v", sr.err)
	}
}

func TestUnixErrors(t *testing.T) {
	if _, err := ListenUnix(tlsTestCtx(t), "", ListenConfig{}); err == nil {
		t.Error("ListenUnix with an empty path succeeded")
	}
	missing := filepath.Join(t.TempDir(), "missing.sock")
	_, err := DialUnix(tlsTestCtx(t), missing, nil, DialConfig{})
	if !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "tlsio: dial unix "+missing+": ") {
		t.Errorf("DialUnix to a missing path: err = %v, want fs.ErrNotExist naming it", err)
	}
}
