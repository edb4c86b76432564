package cluster

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"

	"github.com/asynkron/protoactor-go/remote"
	"github.com/tokenserver/tokenserver/tlsio"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// ErrInvalidNode: node options that cannot work (no mutual TLS off loopback,
// a TLS option without a CA...).
var ErrInvalidNode = errors.New("cluster: invalid node options")

// NodeTLS is the mutual TLS between the nodes of a cluster (Proto.Actor's
// remote runs on gRPC), built from the same tlsio options as the token
// server's and client's.
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
}

// RemoteConfig returns Proto.Actor's remote configuration of a node that
// listens on host:port (port 0 picks a free one): with nodeTLS, mutual TLS
// both ways; without it (nil), plaintext, allowed only when host is a
// loopback address (127.0.0.0/8, ::1 or localhost), for development and
// tests. More remote options may follow (WithAdvertisedHost...).
func RemoteConfig(host string, port int, nodeTLS *NodeTLS, opts ...remote.ConfigOption) (*remote.Config, error) {
	if nodeTLS == nil {
		if !isLoopback(host) {
			return nil, fmt.Errorf("%w: plaintext between nodes only on loopback, not on %q: give NodeTLS", ErrInvalidNode, host)
		}
		return remote.Configure(host, port, opts...), nil
	}
	tlsOpts, err := nodeTLS.RemoteOptions()
	if err != nil {
		return nil, err
	}
	return remote.Configure(host, port, append(tlsOpts, opts...)...), nil
}

// RemoteOptions returns the remote options for mutual TLS: the gRPC server's
// credentials and the dial credentials.
func (n *NodeTLS) RemoteOptions() ([]remote.ConfigOption, error) {
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
	return []remote.ConfigOption{
		remote.WithServerOptions(grpc.Creds(credentials.NewTLS(srv))),
		remote.WithDialOptions(grpc.WithTransportCredentials(credentials.NewTLS(cli))),
	}, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
