package main

import (
	"crypto/tls"

	"github.com/spf13/pflag"

	"github.com/tokenserver/tokenserver/tlsio"
)

// tlsFlags are the --ca, --cert and --key flags that serve, send and bench
// share.
type tlsFlags struct {
	ca, cert, key string
}

// addTLSFlags defines the flags on f, parsed into t; side ("server" or
// "client") is whose certificate and key they are.
func addTLSFlags(f *pflag.FlagSet, t *tlsFlags, side string) {
	f.StringVar(&t.ca, "ca", "", "PEM `FILE` of the CA that signed the peer's certificate")
	f.StringVar(&t.cert, "cert", "", "PEM `FILE` of the "+side+" certificate")
	f.StringVar(&t.key, "key", "", "PEM `FILE` of the "+side+" private key")
}

// load reads the three files.
func (t tlsFlags) load() (tlsio.Options, error) {
	return tlsio.LoadFiles(t.key, t.cert, t.ca)
}

// clientConfig loads the files as a client's TLS configuration (for bench,
// which dials with crypto/tls directly).
func (t tlsFlags) clientConfig() (*tls.Config, error) {
	o, err := t.load()
	if err != nil {
		return nil, err
	}
	return tlsio.ClientConfig(o)
}
