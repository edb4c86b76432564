package tlsio

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// TLS material that can be replaced while connections run: ServerSource
// and ClientSource.

// ServerSource is a server's TLS material (key and certificate, CA, CRL and
// the other [Options]) that its owner can replace while the server runs, as
// Node's server.setSecureContext does: each new handshake uses the material
// current when it starts, and established connections are left as they are.
//
// Build one with [NewServerSource], hand [ServerSource.Config] to tls.Server
// (or to anything that clones it per connection), and call
// [ServerSource.Reload] with new Options when the files change. Reload
// builds and checks the new material in full first, and on any error (a
// key that does not match its certificate, a wrong passphrase, malformed
// PEM, a CRL from another CA, ...) returns it and keeps the old material:
// the server is never left without a certificate. Read the files first
// (with [LoadServerFiles], say): a file that cannot be read is an error
// before Reload is called, and then nothing changes either.
//
// After a Reload that changed the CRL, ask [ServerSource.Revoked] about each
// established connection and close those it revokes; they were verified
// against the old lists. A handshake under way during a Reload finishes
// with the material it started with.
//
// Wiring it into a server actor (for example actors.Server.ReloadTLS): the
// server holds the *ServerSource built from its options in place of the
// *tls.Config of [ServerConfig], and takes Config() once, as the base it
// clones for each accepted socket (a GetConfigForClient that the clone
// wraps is called, and its result used, as before). ReloadTLS(o) calls
// Reload(o), logs and returns its error, and on success asks Revoked of
// every live connection's ConnectionState, closing with that error (which
// matches [ErrRevoked]) those it names. [ServerSource.Info] says what is in
// use, for the log line and the expiry metric.
//
// Its methods may be called from any goroutine. Reload calls are
// serialised among themselves; a handshake never waits for one.
type ServerSource struct{ source }

// ClientSource is a client's TLS material (its certificate, the CA it
// verifies servers against, a CRL, ...) that its owner can replace between
// dials: take [ClientSource.Config] for each dial.
//
// The config Config returns presents the client certificate current at its
// handshake (through GetClientCertificate, so a config taken before a
// Reload presents the new certificate too), and verifies the server
// against the CA, CRL and other options current when Config was called.
// Reload behaves as [ServerSource.Reload]: all or nothing.
//
// Wiring it into a client actor: hold the *ClientSource built from the
// client's options, and call Config() before each dial (instead of keeping
// one *tls.Config); ReloadTLS(o) calls Reload(o). Connections already up
// keep the material they were made with.
type ClientSource struct{ source }

// Info describes the material a source uses now, for logs and metrics.
type Info struct {
	// Generation is 1 for the material the source was built with, and
	// grows by one with each successful Reload.
	Generation uint64

	// Certificate is the leaf certificate this side presents (its serial
	// number, subject and expiry, NotAfter); nil when it presents none (a
	// client without a certificate) or it comes from a hook of
	// Options.TLSConfig.
	Certificate *x509.Certificate

	// Revoked is the number of serial numbers the revocation lists revoke
	// (0 without Options.CRL).
	Revoked int

	// CRLNextUpdate is the earliest nextUpdate of the revocation lists,
	// the date by which their issuer promised newer ones: past it, they
	// may be missing recent revocations, and should be reloaded. Zero
	// without lists, or when none gives one.
	CRLNextUpdate time.Time
}

// NewServerSource builds a server's material from o, as [ServerConfig]
// does, and fails as it does. o.TLSConfig must not set GetConfigForClient:
// the source's Config uses that hook itself.
func NewServerSource(o Options) (*ServerSource, error) {
	s := &ServerSource{source{build: buildServerMaterial}}
	if err := s.init(o); err != nil {
		return nil, err
	}
	return s, nil
}

// NewClientSource builds a client's material from o, as [ClientConfig]
// does, and fails as it does.
func NewClientSource(o Options) (*ClientSource, error) {
	s := &ClientSource{source{build: buildClientMaterial}}
	if err := s.init(o); err != nil {
		return nil, err
	}
	return s, nil
}

// Config returns the server's *tls.Config: its GetConfigForClient hands
// each handshake the configuration built from the material current at that
// moment (what [ServerConfig] would build from the Options last given).
// Session tickets are off, as in every server config of this package. The
// result is a new value each time and is not changed by Reload; clone it
// freely.
func (s *ServerSource) Config() *tls.Config {
	return &tls.Config{
		MinVersion:             tls.VersionTLS12,
		SessionTicketsDisabled: true,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.cur.Load().cfg, nil
		},
	}
}

// Config returns a *tls.Config for the client's next dial: the one
// [ClientConfig] builds from the Options last given, except that the client
// certificate is read at the handshake from the material current then.
// Take a new one for each dial: roots, CRL and the other options are those
// current when Config was called.
func (s *ClientSource) Config() *tls.Config {
	cfg := s.cur.Load().cfg.Clone()
	cfg.Certificates = nil
	cfg.GetClientCertificate = s.clientCertificate
	return cfg
}

// clientCertificate picks the client certificate of the current material
// for a server's request, as crypto/tls does from Certificates (the first
// that the request supports, else none), or asks the hook of its
// Options.TLSConfig.
func (s *ClientSource) clientCertificate(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
	cfg := s.cur.Load().cfg
	if cfg.GetClientCertificate != nil {
		return cfg.GetClientCertificate(cri)
	}
	for i := range cfg.Certificates {
		if cri.SupportsCertificate(&cfg.Certificates[i]) == nil {
			return &cfg.Certificates[i], nil
		}
	}
	return new(tls.Certificate), nil
}

// source is what ServerSource and ClientSource share.
type source struct {
	build  func(Options) (*material, error)
	cur    atomic.Pointer[material] // never nil once built
	reload sync.Mutex               // serialises Reload; never held by a handshake
}

// material is one generation of a source: the config built from one
// Options, and what was parsed with it.
type material struct {
	cfg  *tls.Config
	rev  *revocation
	info Info
}

func (s *source) init(o Options) error {
	m, err := s.build(o)
	if err != nil {
		return err
	}
	m.info.Generation = 1
	s.cur.Store(m)
	return nil
}

// Reload replaces the material with the one built from o, for every
// handshake that starts after it returns. It builds and checks o in full
// first (key and certificate, passphrase, PFX, CA, CRL), and on an error
// keeps the material in use and returns the error, which matches the
// sentinel of the cause ([ErrKeyMismatch], [ErrBadPassphrase], [ErrBadPEM],
// [ErrBadCRL], ...). Established connections are not touched: see
// [ServerSource.Revoked]. It logs nothing; the owner does.
func (s *source) Reload(o Options) error {
	s.reload.Lock()
	defer s.reload.Unlock()
	m, err := s.build(o)
	if err != nil {
		return fmt.Errorf("tlsio: reload refused, the material in use is kept: %w", err)
	}
	m.info.Generation = s.cur.Load().info.Generation + 1
	s.cur.Store(m)
	return nil
}

// Info describes the material in use now.
func (s *source) Info() Info { return s.cur.Load().info }

// Revoked reports whether the peer of an established connection, whose
// state is cs, is revoked under the revocation lists in use now: it
// returns a *[RevokedError] (matching [ErrRevoked]) when a certificate of
// one of cs.VerifiedChains is on a list, nil otherwise. A server's owner
// calls it after a Reload to close the connections of clients revoked
// since their handshake.
//
// It looks only at revocation: a peer whose chain leads to a CA that is no
// longer in use is not reported. A connection without verified chains (no
// client certificate, verification off, or a client with
// Options.AllowCommonName, whose verification leaves them empty) is never
// reported.
func (s *source) Revoked(cs tls.ConnectionState) error {
	return s.cur.Load().rev.check(cs.VerifiedChains)
}

func buildServerMaterial(o Options) (*material, error) {
	if o.TLSConfig != nil && o.TLSConfig.GetConfigForClient != nil {
		return nil, errors.New("tlsio: a ServerSource does not take Options.TLSConfig.GetConfigForClient: its Config sets that hook")
	}
	cfg, rev, err := serverConfig(o)
	if err != nil {
		return nil, err
	}
	return newMaterial(cfg, rev), nil
}

func buildClientMaterial(o Options) (*material, error) {
	cfg, rev, err := clientConfig(o)
	if err != nil {
		return nil, err
	}
	return newMaterial(cfg, rev), nil
}

func newMaterial(cfg *tls.Config, rev *revocation) *material {
	m := &material{cfg: cfg, rev: rev}
	if len(cfg.Certificates) > 0 {
		m.info.Certificate = cfg.Certificates[0].Leaf // set by tls.X509KeyPair
	}
	if rev != nil {
		m.info.Revoked, m.info.CRLNextUpdate = rev.entries, rev.next
	}
	return m
}
