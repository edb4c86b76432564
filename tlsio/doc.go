// Package tlsio holds the TLS side of tokenserver: building *tls.Config values
// from the options of npm token-server (key, cert, ca, passphrase, pfx,
// requestCert, rejectUnauthorized), generating development certificates in
// memory, listening and dialing over TCP or Unix domain sockets (Node's path
// option) with a handshake timeout, and the socket pumps.
//
// What a server or client of package actors needs from it is an [Options]
// value, its TLS field:
//
//	serverTLS, err := tlsio.LoadServerFiles("server.key", "server.crt", "ca.crt") // requires client certificates
//	clientTLS, err := tlsio.LoadFiles("client.key", "client.crt", "ca.crt")
//
//	certs, err := tlsio.GenerateDevCerts() // to try it: a CA, a server and a client, in memory
//	serverTLS, clientTLS = certs.ServerOptions(), certs.ClientOptions()
//
// An encrypted key takes [Options.Passphrase], a PKCS #12 archive
// [Options.PFX]; [ServerConfig] and [ClientConfig] turn Options into a
// *tls.Config for code of your own.
//
// # Existing deployments
//
// Existing token-server deployments work as they are: encrypted keys and
// PKCS #12 archives are read with [Options.Passphrase] and [Options.PFX],
// certificates without subjectAltName (made by token-server's
// extra/cert-gen.sh) are accepted with [Options.AllowCommonName], and a
// server that requests client certificates without a CA verifies them
// against the system roots, as Node does against its default root store.
//
// # Security
//
// The secure path is the short one: [LoadServerFiles] gives a server that
// requires client certificates signed by its CA; TLS 1.2 offers AEAD suites
// only; a server issues no session tickets, so every connection is verified
// in full. [Options.CRL] takes revocation lists, as Node's crl option, and a
// [ServerSource] or [ClientSource] replaces the certificate, CA and lists
// in place for new handshakes, as Node's server.setSecureContext, keeping
// the old material when the new one is bad.
//
// # Pumps
//
// The pumps are the only goroutines that block on a socket. A [ReadPump]
// turns conn.Read results into messages for the connection actor that owns the
// socket, and stops reading while the actor has too much unprocessed input, so
// that TCP pushes back on the peer. A [WritePump] writes the buffers the actor
// hands it, one at a time, so that many small frames queued while a write is in
// flight leave in one write call. [WritePump.WriteNow] lets the actor write a
// small batch itself when that cannot block (the socket's send queue is empty,
// on Linux), saving the hand-off to the pump's goroutine.
package tlsio
