// Package tlsio holds the TLS side of tokenserver: building *tls.Config values
// from the PEM options of npm token-server (key, cert, ca, requestCert,
// rejectUnauthorized), generating development certificates in memory,
// listening and dialing with a handshake timeout, and the socket pumps.
//
// The pumps are the only goroutines that block on a socket. A [ReadPump]
// turns conn.Read results into messages for the connection actor that owns the
// socket, and stops reading while the actor has too much unprocessed input, so
// that TCP pushes back on the peer. A [WritePump] writes the buffers the actor
// hands it, one at a time, so that many small frames queued while a write is in
// flight leave in one write call.
package tlsio
