package main

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/tokenserver/tokenserver/tlsio"
)

// certFiles are the files certs writes, in the order it lists them.
var certFiles = []string{"ca.crt", "ca.key", "server.crt", "server.key", "client.crt", "client.key"}

func cmdCerts(e *env, args []string) error {
	f := newFlags(e, "certs", "certs DIR [--host NAME ...] [--force]", `
Generate a development CA, a server certificate and a client certificate signed
by it (ECDSA P-256, valid for one year) and write them to DIR as ca.crt ca.key
server.crt server.key client.crt client.key (keys with mode 0600). DIR is
created if missing. The server certificate is valid for localhost, 127.0.0.1
and ::1, plus every --host. Existing files are never overwritten unless --force
is given. For development and tests only.`)
	var hosts stringList
	f.Var(&hosts, "host", "also make the server certificate valid for `NAME` (a DNS name or IP address; repeatable)")
	force := f.Bool("force", false, "replace existing certificate and key files")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErrorf("want exactly one DIR argument, got %d", len(pos))
	}
	dir := pos[0]

	certs, err := tlsio.GenerateDevCerts(hosts...)
	if err != nil {
		return err
	}
	if err := certs.WriteFiles(dir, *force); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w\nrefusing to overwrite existing certificates in %s; use --force to replace them", err, dir)
		}
		return err
	}
	for _, name := range certFiles {
		fmt.Fprintln(e.stdout, "wrote", filepath.Join(dir, name))
	}
	return nil
}
