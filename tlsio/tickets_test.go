package tlsio

import (
	"crypto/tls"
	"testing"
)

// tlsTestTicketCache is a client session cache that counts the tickets the
// server issued (Put with a session) and the resumptions attempted (Get
// that found one).
type tlsTestTicketCache struct {
	tls.ClientSessionCache
	puts, hits int
}

func (c *tlsTestTicketCache) Put(key string, cs *tls.ClientSessionState) {
	if cs != nil {
		c.puts++
	}
	c.ClientSessionCache.Put(key, cs)
}

func (c *tlsTestTicketCache) Get(key string) (*tls.ClientSessionState, bool) {
	cs, ok := c.ClientSessionCache.Get(key)
	if ok {
		c.hits++
	}
	return cs, ok
}

// TestNoSessionTickets: a tlsio server issues no session ticket, over TLS 1.3
// and 1.2, so every connection runs a full handshake with its certificate
// verified against the current CA and revocation list (issue 30).
func TestNoSessionTickets(t *testing.T) {
	d := tlsTestDevCerts(t)
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			cache := &tlsTestTicketCache{ClientSessionCache: tls.NewLRUClientSessionCache(4)}
			ccfg := tlsTestClientConfig(t, d.ClientOptions())
			ccfg.MaxVersion = version
			ccfg.ClientSessionCache = cache
			// The same server config for both connections, as a server
			// that shared its ticket keys would have.
			scfg := tlsTestServerConfig(t, d.ServerOptions())
			for i := range 2 {
				addr, res := tlsTestServe(t, scfg)
				// The read makes the client process a TLS 1.3 ticket,
				// sent after the handshake.
				cs, err := tlsTestDialAndRead(t, addr, ccfg)
				if sr := tlsTestServerResultOf(t, res); err != nil || sr.err != nil {
					t.Fatalf("connection %d: client %v, server %v", i, err, sr.err)
				}
				if cs.DidResume {
					t.Errorf("connection %d resumed a session", i)
				}
			}
			if cache.puts != 0 || cache.hits != 0 {
				t.Errorf("the server issued %d session tickets (%d resumptions attempted), want none", cache.puts, cache.hits)
			}
		})
	}
}
