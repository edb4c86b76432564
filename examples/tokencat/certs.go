package main

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/tokenserver/tokenserver/tlsio"
)

// certFiles are the files certs writes, in the order it lists them.
var certFiles = []string{"ca.crt", "ca.key", "server.crt", "server.key", "client.crt", "client.key"}

// newCertsCommand returns "tokencat certs".
func newCertsCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "certs DIR [flags]",
		Short: "write development certificates (CA, server, client) to a directory",
		Long: `Generate a development CA, a server certificate and a client certificate signed
by it (ECDSA P-256, valid for one year) and write them to DIR as ca.crt ca.key
server.crt server.key client.crt client.key (keys with mode 0600). DIR is
created if missing. The server certificate is valid for localhost, 127.0.0.1
and ::1, plus every --host. Existing files are never overwritten unless --force
is given. For development and tests only.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErrorf("want exactly one DIR argument, got %d", len(args))
			}
			return nil
		},
	}
	f := cmd.Flags()
	hosts := f.StringArray("host", nil, "also make the server certificate valid for `NAME` (a DNS name or IP address; repeatable)")
	force := f.Bool("force", false, "replace existing certificate and key files")
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		dir := args[0]
		certs, err := tlsio.GenerateDevCerts(*hosts...)
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
	return cmd
}
