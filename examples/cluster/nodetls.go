package main

import (
	"bytes"
	"encoding/pem"
	"errors"
	"fmt"
	"path/filepath"

	tscluster "github.com/tokenserver/tokenserver/actors/cluster"
	"github.com/tokenserver/tokenserver/tlsio"
)

// errSharedCA: the nodes' CA (--node-certs) is also the token clients' CA
// (--certs), so a token client's certificate would open a node's gRPC port.
var errSharedCA = errors.New("the nodes' CA is also the token clients' CA")

// loadNodeTLS reads the mutual TLS between nodes from --node-certs (nil
// with --plaintext-nodes): the nodes present server.crt when dialed and
// client.crt when they dial, and trust only their own ca.crt, which must
// share no certificate with the ca.crt of --certs.
func loadNodeTLS(c config) (*tscluster.NodeTLS, error) {
	if c.plaintextNodes {
		return nil, nil
	}
	file := func(name string) string { return filepath.Join(c.nodeCerts, name) }
	server, err := tlsio.LoadFiles(file("server.key"), file("server.crt"), file("ca.crt"))
	if err != nil {
		return nil, fmt.Errorf("--node-certs: %w", err)
	}
	server.RequestCert = true
	client, err := tlsio.LoadFiles(file("client.key"), file("client.crt"), file("ca.crt"))
	if err != nil {
		return nil, fmt.Errorf("--node-certs: %w", err)
	}
	tokens, err := tlsio.LoadFiles("", "", filepath.Join(c.certs, "ca.crt"))
	if err != nil {
		return nil, err
	}
	if sharesCert(server.CA, tokens.CA) {
		return nil, fmt.Errorf("%w: --node-certs %s and --certs %s: a token client's certificate would open the nodes; give the nodes a CA of their own (tokencat certs DIR)",
			errSharedCA, c.nodeCerts, c.certs)
	}
	return &tscluster.NodeTLS{Server: server, Client: client, OwnCA: true}, nil
}

// sharesCert says whether two PEM bundles hold the same certificate.
func sharesCert(a, b []byte) bool {
	for rest := a; ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			return false
		}
		for other := b; ; {
			var o *pem.Block
			if o, other = pem.Decode(other); o == nil {
				break
			}
			if bytes.Equal(blk.Bytes, o.Bytes) {
				return true
			}
		}
	}
}
