package tlsio

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// sysRootsChildEnv makes the test binary run TestServerConfigRealSystemRoots
// as the child: its value is the directory of the dev certificates, then
// ":roots" or ":none".
const sysRootsChildEnv = "TLSIO_TEST_SYSTEM_ROOTS_CHILD"

// TestServerConfigRealSystemRoots checks with the real x509.SystemCertPool
// what TestServerConfigNoCA checks with a replaced one: a server with
// RequestCert and no CA verifies clients against the system roots, and is
// ErrNoCA without any. The system roots are loaded once per process, so each
// case runs in a child process whose roots are set with SSL_CERT_FILE and
// SSL_CERT_DIR.
func TestServerConfigRealSystemRoots(t *testing.T) {
	if v := os.Getenv(sysRootsChildEnv); v != "" {
		sysRootsChild(t, v)
		return
	}
	switch runtime.GOOS {
	case "windows", "darwin", "ios", "android", "plan9", "js", "wasip1":
		t.Skipf("SSL_CERT_FILE does not set the system roots on %s", runtime.GOOS)
	}
	d := tlsTestDevCerts(t)
	dir := t.TempDir()
	if err := d.WriteFiles(dir, false); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	for _, tc := range []struct{ mode, certFile string }{
		{"roots", filepath.Join(dir, "ca.crt")},
		{"none", filepath.Join(empty, "missing.crt")},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestServerConfigRealSystemRoots$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(),
				sysRootsChildEnv+"="+dir+":"+tc.mode,
				"SSL_CERT_FILE="+tc.certFile,
				"SSL_CERT_DIR="+empty,
			)
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "--- PASS: TestServerConfigRealSystemRoots") {
				t.Fatalf("child process: %v\n%s", err, out)
			}
		})
	}
}

func sysRootsChild(t *testing.T, v string) {
	i := strings.LastIndexByte(v, ':')
	dir, mode := v[:i], v[i+1:]
	o, err := LoadFiles(filepath.Join(dir, "server.key"), filepath.Join(dir, "server.crt"), "")
	if err != nil {
		t.Fatal(err)
	}
	o.RequestCert = true
	if mode == "none" {
		if _, err := ServerConfig(o); !errors.Is(err, ErrNoCA) {
			t.Fatalf("no system roots: err = %v, want ErrNoCA", err)
		}
		return
	}
	scfg := tlsTestServerConfig(t, o)
	copt, err := LoadFiles(filepath.Join(dir, "client.key"), filepath.Join(dir, "client.crt"), filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	addr, res := tlsTestServe(t, scfg)
	if _, err := tlsTestDialAndRead(t, addr, tlsTestClientConfig(t, copt)); err != nil {
		t.Fatalf("client: %v", err)
	}
	if sr := tlsTestServerResultOf(t, res); sr.err != nil || len(sr.state.VerifiedChains) == 0 {
		t.Fatalf("server: %v, %d verified chains", sr.err, len(sr.state.VerifiedChains))
	}
	// The client (no CA given) verifies the server against the same roots.
	copt.CA = nil
	addr, res = tlsTestServe(t, scfg)
	if _, err := tlsTestDialAndRead(t, addr, tlsTestClientConfig(t, copt)); err != nil {
		t.Fatalf("client without CA: %v", err)
	}
	tlsTestServerResultOf(t, res)
}
