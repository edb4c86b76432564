package actors

import (
	"cmp"
	"crypto/tls"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tokenserver/tokenserver/tlsio"
)

// Replacing the TLS material of a running Server or Client (ReloadTLS), and
// closing the connections whose client the new revocation lists revoke.
//
// The material lives in a tlsio.ServerSource or tlsio.ClientSource, which is
// safe for concurrent use: ReloadTLS replaces it from the caller's
// goroutine, and each handshake reads what is current when it starts. The
// server actor then checks its connections against the new lists
// (tlsReloaded), and checks each connection that comes up too: a handshake
// under way during a reload verified its client against the old lists.

// tlsReloaded asks the server actor to close the established connections
// whose client certificate the revocation lists now in use revoke.
type tlsReloaded struct{}

// tlsReloader is what a Server or Client keeps of its TLS source. It does not
// change once built; its functions are safe for concurrent use.
type tlsReloader struct {
	reload  func(tlsio.Options) error       // nil: cannot reload (why says why)
	why     string                          // why it cannot reload
	info    func() tlsio.Info               // the material in use
	revoked func(tls.ConnectionState) error // server: the source's Revoked; nil without a source
	log     *slog.Logger
	role    role
}

// newServerTLS builds the server's TLS configuration from o, whose every
// handshake uses the material current when it starts, and its reloader.
// With o.TLSConfig.GetConfigForClient (a hook that decides each handshake's
// material itself, and that a tlsio.ServerSource takes for its own use) the
// configuration is built once, and ReloadTLS refuses.
func newServerTLS(o tlsio.Options, protocols []string, log *slog.Logger) (*tls.Config, *tlsReloader, error) {
	adjust := func(c *tls.Config) {
		requireClientCertificate(c)
		withProtocols(protocols)(c)
	}
	r := &tlsReloader{log: cmp.Or(log, discardLogger), role: roleServer}
	if o.TLSConfig != nil && o.TLSConfig.GetConfigForClient != nil {
		cfg, err := tlsio.ServerConfig(o)
		if err != nil {
			return nil, nil, err
		}
		info := tlsio.Info{Generation: 1}
		if len(cfg.Certificates) > 0 {
			info.Certificate = cfg.Certificates[0].Leaf
		}
		r.info = func() tlsio.Info { return info }
		r.why = "its TLS.TLSConfig sets GetConfigForClient, which decides each handshake's material itself"
		return adjustEach(cfg, adjust), r, nil
	}
	src, err := tlsio.NewServerSource(o)
	if err != nil {
		return nil, nil, err
	}
	r.reload, r.info, r.revoked = src.Reload, src.Info, src.Revoked
	return adjustEach(src.Config(), adjust), r, nil
}

// adjustEach applies adjust to cfg and to every configuration its
// GetConfigForClient hands a handshake (a tlsio.ServerSource's current
// material, say): each such configuration is cloned and adjusted once, and
// the clone is handed out as long as the hook returns the same one.
func adjustEach(cfg *tls.Config, adjust func(*tls.Config)) *tls.Config {
	adjust(cfg)
	inner := cfg.GetConfigForClient
	if inner == nil {
		return cfg
	}
	type pair struct{ from, to *tls.Config }
	var last atomic.Pointer[pair]
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		c, err := inner(hello)
		if c == nil || err != nil {
			return c, err
		}
		if p := last.Load(); p != nil && p.from == c {
			return p.to, nil
		}
		to := c.Clone()
		adjust(to)
		last.Store(&pair{c, to})
		return to, nil
	}
	return cfg
}

// newClientTLS builds the client's TLS source, from which each dial takes
// its configuration, and its reloader.
func newClientTLS(o tlsio.Options, log *slog.Logger) (*tlsio.ClientSource, *tlsReloader, error) {
	src, err := tlsio.NewClientSource(o)
	if err != nil {
		return nil, nil, err
	}
	return src, &tlsReloader{reload: src.Reload, info: src.Info, log: cmp.Or(log, discardLogger), role: roleClient}, nil
}

// apply reloads o and logs the outcome: the error, or the certificate now
// presented and the number of serial numbers revoked.
func (r *tlsReloader) apply(o tlsio.Options) error {
	if r.reload == nil {
		err := fmt.Errorf("%w: ReloadTLS: %s", ErrInvalidOptions, r.why)
		r.log.Error("TLS reload refused", "role", r.role.String(), "err", err)
		return err
	}
	if err := r.reload(o); err != nil {
		r.log.Error("TLS reload refused", "role", r.role.String(), "err", err)
		return err
	}
	info := r.info()
	attrs := []any{"role", r.role.String(), "generation", info.Generation, "revoked_serials", info.Revoked}
	if c := info.Certificate; c != nil {
		attrs = append(attrs, "serial", fmt.Sprintf("%X", c.SerialNumber), "subject", c.Subject.String(), "not_after", c.NotAfter)
	}
	r.log.Info("TLS material reloaded", attrs...)
	return nil
}

// ReloadTLS replaces the server's TLS material (key and certificate or PFX,
// CA, revocation lists, and the other options) with o for every handshake
// that starts after it returns, as Node's server.setSecureContext. Give the
// complete options, as for ServerOptions.TLS (RequestCert included), not
// only what changes. Established connections stay up, with the material of
// their handshake.
//
// o is built and checked in full first (see tlsio.ServerSource.Reload): bad
// material (a key that does not match its certificate, a wrong passphrase,
// malformed PEM, a revocation list that no CA of o signed, no certificate)
// is an error, returned and logged, which matches the sentinel of its cause
// (tlsio.ErrKeyMismatch, tlsio.ErrBadPassphrase, ...), and the material in
// use stays: the server is never left without a certificate. Read the files
// before calling it (tlsio.LoadServerFiles, say): a file that cannot be read
// is then an error before anything changes.
//
// After a reload, the server closes every established connection whose
// client certificate, or a CA certificate of its chain, the new revocation
// lists revoke: an error event whose error matches tlsio.ErrRevoked (a
// *tlsio.RevokedError in it names the serial number), then a close event
// with hadError set. Other connections are not touched. ReloadTLS does not
// wait for those closes, and never blocks on the network. It may be called
// from any goroutine; calls take effect one at a time.
//
// A server whose TLS.TLSConfig sets GetConfigForClient cannot reload (that
// hook decides each handshake's material): ReloadTLS returns an error that
// matches ErrInvalidOptions.
func (s *Server) ReloadTLS(o tlsio.Options) error {
	if err := s.tlsr.apply(o); err != nil {
		return err
	}
	s.system.Root.Send(s.pid, tlsReloaded{})
	return nil
}

// TLSInfo describes the TLS material of the server's new handshakes: its
// certificate (serial number, expiry), the number of serial numbers its
// revocation lists revoke and their next update, and how many times it was
// reloaded.
func (s *Server) TLSInfo() tlsio.Info { return s.tlsr.info() }

// ReloadTLS replaces the client's TLS material (its key and certificate or
// PFX, the CA it verifies servers against, revocation lists, and the other
// options) with o for its next dial, reconnections included; the
// connection up now keeps the material of its handshake. Give the complete
// options, as for ClientOptions.TLS. Bad material is an error, returned and
// logged, and the material in use stays, as with Server.ReloadTLS.
func (c *Client) ReloadTLS(o tlsio.Options) error { return c.tlsr.apply(o) }

// TLSInfo describes the TLS material of the client's next dial (see
// Server.TLSInfo).
func (c *Client) TLSInfo() tlsio.Info { return c.tlsr.info() }

// closeRevoked closes, each with its error, the established connections
// whose client the revocation lists now in use revoke. Those still in their
// handshake are checked when they come up.
func (a *serverActor) closeRevoked(ctx actor.Context) {
	n := 0
	for c, live := range a.conns {
		if !live {
			continue
		}
		if err := a.revoked(c); err != nil {
			ctx.Send(c.pid, forceClose{err})
			n++
		}
	}
	if n > 0 {
		a.log.Warn("TLS reload: closing the connections whose client certificate is now revoked", "connections", n)
	}
}

// revokedUp is revoked for a connection that comes up: its handshake ends
// refused, as it would have with the lists in use when it began (an error
// matching ErrHandshake, counted as a handshake failure).
func (a *serverActor) revokedUp(c *Connection) error {
	if err := a.revoked(c); err != nil {
		return fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	return nil
}

// revoked returns the error to close c with when the revocation lists now
// in use revoke its client (its handshake done), nil otherwise.
func (a *serverActor) revoked(c *Connection) error {
	st, ok := c.TLSState()
	if !ok || a.s.tlsr.revoked == nil {
		return nil
	}
	if err := a.s.tlsr.revoked(st); err != nil {
		return fmt.Errorf("tokenserver: connection closed, the reloaded TLS material revokes its client: %w", err)
	}
	return nil
}
