package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/tokenserver/tokenserver/tlsio"
)

// passphraseEnv is the environment variable that holds the passphrase of an
// encrypted --key or of --pfx when --passphrase-file is not given.
const passphraseEnv = "TOKENCAT_PASSPHRASE"

// tlsFlags are the TLS flags that serve, send and bench share: --ca, --cert
// and --key (or --pfx), --passphrase-file, and on the client side
// --allow-common-name.
type tlsFlags struct {
	ca, cert, key   string
	pfx             string
	passphraseFile  string
	passphraseArg   string // the refused --passphrase
	allowCommonName bool   // client side only
}

// addTLSFlags defines the flags on f, parsed into t; side ("server" or
// "client") is whose certificate and key they are. --allow-common-name is a
// client's only: a server never checks the name in a client certificate.
//
// There is no --passphrase flag that takes the passphrase itself: the
// command line of a process is readable by every user of the machine (ps,
// /proc/PID/cmdline), while its environment is readable only by its own
// user and root, and a file by whoever its mode allows. A hidden
// --passphrase is defined only to refuse it with a message that says so.
func addTLSFlags(f *pflag.FlagSet, t *tlsFlags, side string) {
	f.StringVar(&t.ca, "ca", "", "PEM `FILE` of the CA that signed the peer's certificate")
	f.StringVar(&t.cert, "cert", "", "PEM `FILE` of the "+side+" certificate")
	f.StringVar(&t.key, "key", "", "PEM `FILE` of the "+side+" private key, possibly encrypted (see --passphrase-file)")
	f.StringVar(&t.pfx, "pfx", "", "PKCS #12 `FILE` with the "+side+" key and certificate, instead of --cert and --key")
	f.StringVar(&t.passphraseFile, "passphrase-file", "", "read the passphrase of an encrypted --key or --pfx from the first line of `FILE` (default: $"+passphraseEnv+")")
	f.StringVar(&t.passphraseArg, "passphrase", "", "refused: use --passphrase-file or $"+passphraseEnv)
	_ = f.MarkHidden("passphrase")
	if side == "client" {
		f.BoolVar(&t.allowCommonName, "allow-common-name", false, "accept a server certificate named only in its Common Name (no subjectAltName), as Node does")
	}
}

// tlsHelp is the paragraph of the long help of serve, send and bench about
// encrypted keys, PKCS #12 and passphrases.
const tlsHelp = `An encrypted --key (PKCS #8, or the legacy PEM form), or --pfx (a PKCS #12
archive, instead of --cert and --key; only --ca is trusted for peers, not
the self-signed CA certificates inside it, which Node would trust too), is decrypted with the first line of
--passphrase-file, or else with $` + passphraseEnv + `. There is no --passphrase
flag: a command line is visible to every user of the machine (ps), an
environment only to its own user and root, a file to whom its mode allows.
A --passphrase-file that others may read, or its group unless root owns it,
is refused, as ssh refuses such a key: chmod 600 it (0640 at most if root
owns it).`

// tlsFlagNames are the names of the flags of addTLSFlags, for bench, where
// they go with --addr only.
var tlsFlagNames = []string{"ca", "cert", "key", "pfx", "passphrase-file", "allow-common-name"}

// check reports a usage error for flags f (parsed into t) that cannot work
// together: --passphrase; --pfx with --cert or --key; a missing --ca, or a
// missing --cert or --key without --pfx. --ca is required even with --pfx:
// without it the system roots would be trusted too, and a server would
// accept any client with a certificate from a public CA.
func (t tlsFlags) check(f *pflag.FlagSet) error {
	if err := refusePassphrase(f); err != nil {
		return err
	}
	if f.Changed("pfx") {
		if t.pfx == "" {
			return usageErrorf("--pfx needs a file")
		}
		if f.Changed("cert") || f.Changed("key") {
			return usageErrorf("--pfx replaces --cert and --key: give either --pfx or --cert and --key")
		}
		return requireFlags(f, "ca")
	}
	return requireFlags(f, "ca", "cert", "key")
}

// refusePassphrase reports a usage error when --passphrase was given. The
// message never repeats the passphrase.
func refusePassphrase(f *pflag.FlagSet) error {
	if f.Changed("passphrase") {
		return usageErrorf("--passphrase is not supported: a command line is visible to every user in ps; " +
			"put the passphrase in a file readable only by you and give --passphrase-file FILE, or set " + passphraseEnv)
	}
	return nil
}

// load reads the files (and the passphrase) into TLS options. It unsets
// $TOKENCAT_PASSPHRASE, read or not, so that no process tokencat starts
// inherits it.
func (t tlsFlags) load() (tlsio.Options, error) {
	defer os.Unsetenv(passphraseEnv)
	return t.read(t.passphrase)
}

// read reads the files into TLS options, with the passphrase that pass
// returns (serve's SIGHUP reads them again: see reload.go).
func (t tlsFlags) read(pass func() (string, error)) (tlsio.Options, error) {
	o, err := tlsio.LoadFiles(t.key, t.cert, t.ca)
	if err != nil {
		return tlsio.Options{}, err
	}
	if t.pfx != "" {
		if o.PFX, err = os.ReadFile(t.pfx); err != nil {
			return tlsio.Options{}, fmt.Errorf("read pfx file: %w", err)
		}
	}
	if o.Passphrase, err = pass(); err != nil {
		return tlsio.Options{}, err
	}
	o.AllowCommonName = t.allowCommonName
	return o, nil
}

// passphrase returns the first line of --passphrase-file, without its line
// ending (what openssl's -passin file: reads), or else the value of
// $TOKENCAT_PASSPHRASE, or else "". A file open to others is refused
// (checkSecretFileMode).
func (t tlsFlags) passphrase() (string, error) {
	if t.passphraseFile == "" {
		return os.Getenv(passphraseEnv), nil
	}
	f, err := os.Open(t.passphraseFile)
	if err != nil {
		return "", fmt.Errorf("read passphrase file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat() // of the file opened, even through a symbolic link
	if err != nil {
		return "", fmt.Errorf("read passphrase file: %w", err)
	}
	if err := checkSecretFileMode("passphrase-file", t.passphraseFile, fi); err != nil {
		return "", err
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return "", fmt.Errorf("read passphrase file: %w", err)
	}
	line, _, _ := bytes.Cut(b, []byte{'\n'})
	return string(bytes.TrimSuffix(line, []byte{'\r'})), nil
}

// clientConfig loads the files as a client's TLS configuration (for bench,
// which dials with crypto/tls directly).
func (t tlsFlags) clientConfig() (*tls.Config, error) {
	o, err := t.load()
	if err != nil {
		return nil, err
	}
	cfg, err := tlsio.ClientConfig(o)
	return cfg, t.explainPassphraseError(err, o.Passphrase)
}

// passphraseError is a missing or wrong passphrase (tlsio.ErrBadPassphrase
// is in its chain) worded with tokencat's flags: the library's message names
// a Go field, Options.Passphrase.
type passphraseError struct {
	msg string
	err error // from tlsio
}

// Error returns the message for the command line.
func (e *passphraseError) Error() string { return e.msg }

// Unwrap returns tlsio's error.
func (e *passphraseError) Unwrap() error { return e.err }

// explainPassphraseError rewords err, from building a TLS configuration of
// the options load returned (passphrase is theirs), when the key or PFX
// could not be decrypted: which flag's file, where the passphrase came from,
// how to give one. Any other error is returned as it is.
func (t tlsFlags) explainPassphraseError(err error, passphrase string) error {
	if !errors.Is(err, tlsio.ErrBadPassphrase) {
		return err
	}
	file := "--key " + t.key
	if t.pfx != "" {
		file = "--pfx " + t.pfx
	}
	if passphrase == "" && t.passphraseFile == "" {
		return &passphraseError{fmt.Sprintf("%s is encrypted and no passphrase was given: pass --passphrase-file FILE or set %s",
			file, passphraseEnv), err}
	}
	from := "$" + passphraseEnv
	if t.passphraseFile != "" {
		from = "--passphrase-file " + t.passphraseFile
	}
	return &passphraseError{fmt.Sprintf("the passphrase in %s does not decrypt %s: %v", from, file, err), err}
}

// explainTLSError adds to err, when a server certificate was refused for
// naming its host only in its Common Name, what to do about it with
// tokencat's flags (allowed: --allow-common-name was given). Any other
// error is returned as it is.
func explainTLSError(err error, allowed bool) error {
	if !errors.Is(err, tlsio.ErrCommonNameOnly) {
		return err
	}
	var herr x509.HostnameError
	byIP := errors.As(err, &herr) && net.ParseIP(strings.Trim(herr.Host, "[]")) != nil
	var hint string
	switch {
	case byIP && allowed:
		hint = "--allow-common-name is given, but a Common Name is never compared with an IP address: connect by the host name in the certificate"
	case byIP:
		hint = "connect by the host name in the certificate, not by IP address, and pass --allow-common-name to accept it as Node does"
	default:
		hint = "pass --allow-common-name to accept it as Node does"
	}
	return fmt.Errorf("%w\n(tokencat: %s; or better, reissue the certificate with a subjectAltName)", err, hint)
}
