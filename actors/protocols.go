package actors

import (
	"crypto/tls"
	"fmt"
	"slices"

	"github.com/tokenserver/tokenserver/wire"
)

// The protocols a server or a client speaks, negotiated by ALPN: token/2
// (wire/TOKEN2.md) between tokenserver peers, token/1 with everyone else.
const (
	// ProtocolToken1 is token/1, the protocol of npm token-server 1.0.10:
	// what a connection speaks when no protocol is negotiated.
	ProtocolToken1 = wire.ProtocolToken1
	// ProtocolToken2 is token/2: acknowledged, resumable delivery.
	ProtocolToken2 = wire.ProtocolToken2
)

// defaultProtocols is what servers and clients offer unless told otherwise,
// in order of preference.
var defaultProtocols = []string{ProtocolToken2, ProtocolToken1}

// protocolsOf checks ServerOptions.Protocols or ClientOptions.Protocols and
// returns the list to negotiate: the default when p is empty.
func protocolsOf(p []string) ([]string, error) {
	if len(p) == 0 {
		return defaultProtocols, nil
	}
	for i, name := range p {
		if name != ProtocolToken1 && name != ProtocolToken2 {
			return nil, fmt.Errorf("%w: protocol %q: only %q and %q are spoken", ErrInvalidOptions, name, ProtocolToken2, ProtocolToken1)
		}
		if slices.Contains(p[:i], name) {
			return nil, fmt.Errorf("%w: protocol %q given twice", ErrInvalidOptions, name)
		}
	}
	return slices.Clone(p), nil
}

// offersToken2 reports whether protocols has token/2.
func offersToken2(protocols []string) bool { return slices.Contains(protocols, ProtocolToken2) }

// withProtocols is the adjustment of a TLS configuration that negotiates
// protocols by ALPN. A peer that offers or selects none speaks token/1; a
// server also takes a client that offers only protocols it does not know
// (crypto/tls would refuse it with an alert).
func withProtocols(protocols []string) func(*tls.Config) {
	return func(cfg *tls.Config) { cfg.NextProtos = protocols }
}

// Session is the id of the connection's token/2 session, in hex (32
// characters), once it is open; "" on token/1. A server's Connection keeps
// its session across the sockets its client resumes it on; a handler that
// must drop repeats across server restarts, or across the front nodes of a
// cluster, keys them by Session and TokenReceived.Seq.
func (c *Connection) Session() string {
	if s := c.session.Load(); s != nil {
		return *s
	}
	return ""
}

// PeerReceived is, on a server's token/2 connection, how many of its
// session's data frames the client said it had received when it opened the
// session here: 0 for a new client; more for a client that comes from
// another server that had sent it those (a server restarted, another front
// node of a cluster). A service that answers one session from behind
// several servers sends again only its replies past that number, which the
// client numbers on from there. 0 on a client and on token/1.
func (c *Connection) PeerReceived() uint64 { return c.peerReceived.Load() }

// Protocol is the wire protocol of the connection: ProtocolToken2 or
// ProtocolToken1, once its TLS handshake (and token/2's greeting) is done;
// "" before.
func (c *Connection) Protocol() string {
	if codec := c.codec(); codec != nil {
		return codec.Protocol()
	}
	return ""
}
