package cluster

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/asynkron/protoactor-go/remote"
	"github.com/tokenserver/tokenserver/tlsio"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// ErrInvalidNode: node options that cannot work (no mutual TLS off loopback,
// a TLS option without a CA, no way to tell a node's certificate from a
// token client's...).
var ErrInvalidNode = errors.New("cluster: invalid node options")

// errNotNode: the peer's certificate is verified but names none of
// NodeTLS.NodeNames, so it is not a node's.
var errNotNode = errors.New("cluster: the peer's certificate names no node name")

// NodeTLS is the mutual TLS between the nodes of a cluster (Proto.Actor's
// remote runs on gRPC), built from the same tlsio options as the token
// server's and client's.
//
// A token client's certificate must never open a node: whoever holds one
// could call the gRPC service of Proto.Actor's remote and send any actor
// message to any actor of the node. So a node must tell node certificates
// from client certificates, in one of two ways:
//   - OwnCA: the nodes have a CA of their own, that signs node certificates
//     only, and Server.CA and Client.CA hold that CA alone (never the CA of
//     the token clients). This is the stronger separation: no certificate of
//     the clients' CA ever chains to it, whatever names it carries.
//   - NodeNames: one CA signs both, and node certificates carry a name that
//     client certificates never do (a DNS name or a URI in the
//     subjectAltName); a node accepts only peers whose verified certificate
//     carries one of NodeNames.
//
// RemoteOptions refuses a NodeTLS that does neither.
type NodeTLS struct {
	// Server is what a node's remote server presents (Key and Cert) and
	// verifies other nodes' client certificates against (CA, with
	// RequestCert true).
	Server tlsio.Options
	// Client is what a node presents when it dials another (Key and Cert,
	// a certificate for client authentication) and verifies that node's
	// server certificate against (CA). The server certificate must be valid
	// for the host the node dials (the advertised host of the other node).
	Client tlsio.Options
	// OwnCA says that the CAs of Server and Client sign node certificates
	// only, never a token client's: every certificate they verify is a
	// node's.
	OwnCA bool
	// NodeNames are names that only node certificates carry: DNS names
	// (compared without case), or URIs (compared exactly) when a name holds
	// "://", such as "spiffe://example.org/tokens/node". When not empty, a
	// node accepts a node that dials it, and talks to a node it dials, only
	// if the other's verified certificate has one of them in its
	// subjectAltName; with OwnCA as well, both checks apply.
	NodeNames []string
}

// RemoteConfig returns Proto.Actor's remote configuration of a node that
// listens on host:port (port 0 picks a free one): with nodeTLS, mutual TLS
// both ways; without it (nil), plaintext, allowed only when host is a
// loopback address (127.0.0.0/8, ::1 or localhost), for development and
// tests. More remote options may follow (WithAdvertisedHost...); the TLS
// credentials and the ServerGuard interceptors are applied after them, so
// that a remote.WithServerOptions or WithDialOptions among them (which
// replace the lists) does not drop them.
func RemoteConfig(host string, port int, nodeTLS *NodeTLS, opts ...remote.ConfigOption) (*remote.Config, error) {
	if nodeTLS == nil {
		if !isLoopback(host) {
			return nil, fmt.Errorf("%w: plaintext between nodes only on loopback, not on %q: give NodeTLS", ErrInvalidNode, host)
		}
		return remote.Configure(host, port, append(opts, ServerGuard())...), nil
	}
	tlsOpts, err := nodeTLS.RemoteOptions()
	if err != nil {
		return nil, err
	}
	return remote.Configure(host, port, append(opts, tlsOpts...)...), nil
}

// RemoteOptions returns the remote options for mutual TLS between nodes:
// the gRPC server's credentials, the dial credentials, and ServerGuard.
// They add to the server and dial options already set, so give them after
// any remote.WithServerOptions or WithDialOptions of yours (which replace
// the lists).
func (n *NodeTLS) RemoteOptions() ([]remote.ConfigOption, error) {
	if !n.OwnCA && len(n.NodeNames) == 0 {
		return nil, fmt.Errorf("%w: nothing tells a node's certificate from a token client's: give the nodes a CA of their own (OwnCA) or NodeNames", ErrInvalidNode)
	}
	for _, name := range n.NodeNames {
		if strings.TrimSpace(name) == "" {
			return nil, fmt.Errorf("%w: an empty name in NodeNames", ErrInvalidNode)
		}
	}
	srv, err := tlsio.ServerConfig(n.Server)
	if err != nil {
		return nil, fmt.Errorf("%w: server TLS: %w", ErrInvalidNode, err)
	}
	if srv.ClientAuth != tls.RequireAndVerifyClientCert {
		return nil, fmt.Errorf("%w: server TLS must require and verify client certificates (RequestCert, a CA, RejectUnauthorized not false)", ErrInvalidNode)
	}
	cli, err := tlsio.ClientConfig(n.Client)
	if err != nil {
		return nil, fmt.Errorf("%w: client TLS: %w", ErrInvalidNode, err)
	}
	if len(cli.Certificates) == 0 && cli.GetClientCertificate == nil {
		return nil, fmt.Errorf("%w: client TLS has no certificate to present", ErrInvalidNode)
	}
	if cli.InsecureSkipVerify {
		return nil, fmt.Errorf("%w: client TLS must verify the other node (RejectUnauthorized not false)", ErrInvalidNode)
	}
	if len(n.NodeNames) > 0 {
		names := append([]string(nil), n.NodeNames...)
		requireNodeName(srv, names)
		requireNodeName(cli, names)
	}
	serverCreds := grpc.Creds(credentials.NewTLS(srv))
	dialCreds := grpc.WithTransportCredentials(credentials.NewTLS(cli))
	return []remote.ConfigOption{
		func(c *remote.Config) {
			c.ServerOptions = append(c.ServerOptions, serverCreds)
			// Last, so that it wins over the default insecure option.
			c.DialOptions = append(c.DialOptions, dialCreds)
		},
		ServerGuard(),
	}, nil
}

// requireNodeName makes cfg refuse a peer whose verified certificate names
// none of names, after cfg's own VerifyConnection if it has one.
func requireNodeName(cfg *tls.Config, names []string) {
	prev := cfg.VerifyConnection
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if prev != nil {
			if err := prev(cs); err != nil {
				return err
			}
		}
		if len(cs.PeerCertificates) == 0 {
			return errNotNode
		}
		leaf := cs.PeerCertificates[0]
		for _, name := range names {
			if strings.Contains(name, "://") {
				for _, u := range leaf.URIs {
					if u.String() == name {
						return nil
					}
				}
				continue
			}
			for _, d := range leaf.DNSNames {
				if strings.EqualFold(d, name) {
					return nil
				}
			}
		}
		return fmt.Errorf("%w (subject %q; node names %q)", errNotNode, leaf.Subject.String(), names)
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
