//go:build unix

package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A --passphrase-file that others may read, or that its group may read
// unless root owns it, is refused before anything is loaded (exit 1), with
// a message that says what to do; 0600, and 0640 for a file root owns, are
// accepted.
func TestPassphraseFileOpenToOthersIsRefused(t *testing.T) {
	t.Parallel()
	dir := certDir(t)
	key := writeTestFile(t, t.TempDir(), "server-enc.key", encryptedKey(t, readPair(t, dir, "server"), testPassphrase))
	// Serve fails (exit 1) on its --metrics address, in use, which it
	// listens on only once the TLS files are loaded.
	inUse, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer inUse.Close()
	loaded := "--metrics: listen tcp " + inUse.Addr().String()
	serve := func(passFile string) result {
		t.Helper()
		return tokencatEnv(t, 30*time.Second, []string{"TOKENCAT_PASSPHRASE="}, "", "serve", "--listen", "127.0.0.1:0",
			"--ca", filepath.Join(dir, "ca.crt"), "--cert", filepath.Join(dir, "server.crt"), "--key", key,
			"--passphrase-file", passFile, "--metrics", inUse.Addr().String())
	}
	rootOwns := os.Geteuid() == 0 // the files this test writes
	for _, c := range []struct {
		mode    os.FileMode
		refused bool
	}{
		{0o600, false},
		{0o400, false},
		{0o644, true},
		{0o604, true},
		{0o620, true},
		{0o660, true},
		{0o640, !rootOwns},
	} {
		p := writeTestFile(t, t.TempDir(), "pass", []byte(testPassphrase+"\n"))
		if err := os.Chmod(p, c.mode); err != nil {
			t.Fatal(err)
		}
		r := serve(p)
		if !c.refused {
			if r.code != 1 || !strings.Contains(r.stderr, loaded) {
				t.Errorf("mode %#o: exit %d, stderr %q; want it accepted", c.mode, r.code, r.stderr)
			}
			continue
		}
		want := "--passphrase-file " + p + fmt.Sprintf(": permissions %#o are too open", c.mode)
		if r.code != 1 || !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "chmod 600 "+p) {
			t.Errorf("mode %#o: exit %d, stderr %q; want exit 1 and %q with the chmod to run", c.mode, r.code, r.stderr, want)
		}
	}
	if help := runInProcess(t, "serve", "--help").stdout; !strings.Contains(help, "A --passphrase-file that others may read") {
		t.Errorf("serve help does not say which --passphrase-file is refused:\n%s", help)
	}
	if rootOwns {
		// Owned by another user than root, group read is refused too.
		p := writeTestFile(t, t.TempDir(), "pass", []byte(testPassphrase+"\n"))
		if err := os.Chmod(p, 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if r := serve(p); r.code != 1 || !strings.Contains(r.stderr, "are too open") {
			t.Errorf("mode 0640 owned by uid 65534: exit %d, stderr %q; want it refused", r.code, r.stderr)
		}
	}
}
