//go:build unix

package main

import (
	"fmt"
	"os"
	"syscall"
)

// checkSecretFileMode refuses a secret file (--passphrase-file flag, named
// name) that fi, its Stat, shows open to others, as ssh refuses a private key
// file and PostgreSQL a key file: others may have no permission at all, and
// the group none either, except read when root owns the file (a file an
// administrator shares with the service's group, such as a Kubernetes secret
// with an fsGroup). A warning instead would come when the secret has already
// been exposed, in a log few read; the fix is one chmod.
func checkSecretFileMode(flag, name string, fi os.FileInfo) error {
	allowed := os.FileMode(0o600)
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid == 0 {
		allowed = 0o640
	}
	perm := fi.Mode().Perm()
	if perm&^allowed == 0 {
		return nil
	}
	return fmt.Errorf("--%s %s: permissions %#o are too open: it must not be readable or writable by others, "+
		"nor by its group unless root owns it (then 0640 at most); run chmod 600 %s", flag, name, perm, name)
}
