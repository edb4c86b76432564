package cluster

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
)

// sessionKeySize is the size of the key that names a token/2 session to
// its grain (TokenBatch.session).
const sessionKeySize = 16

// sessionKey names a connection's token/2 session to its grain: the first
// 16 bytes of the SHA-256 of the client certificate's SubjectPublicKeyInfo
// followed by the session's id. A token/2 server binds each session to the
// client certificate's key, so that no other client can resume it; the key
// keeps that binding in the grain, whose identity may be shared by clients
// of several certificates (SubjectIdentity, an IdentityFunc of your own).
// It is nil on token/1 (session "") or for an id that is not hex.
func sessionKey(state tls.ConnectionState, session string) []byte {
	if session == "" {
		return nil
	}
	id, err := hex.DecodeString(session)
	if err != nil {
		return nil
	}
	h := sha256.New()
	if len(state.PeerCertificates) > 0 {
		h.Write(state.PeerCertificates[0].RawSubjectPublicKeyInfo)
	}
	h.Write(id)
	return h.Sum(nil)[:sessionKeySize]
}
