package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"testing"

	"github.com/stretchr/testify/require"
)

// The key that names a session to its grain binds it to the client
// certificate's key: the same session id from another certificate is
// another session.
func TestSessionKey(t *testing.T) {
	id := "00112233445566778899aabbccddeeff"
	one := tls.ConnectionState{PeerCertificates: []*x509.Certificate{{RawSubjectPublicKeyInfo: []byte("key one")}}}
	two := tls.ConnectionState{PeerCertificates: []*x509.Certificate{{RawSubjectPublicKeyInfo: []byte("key two")}}}
	k := sessionKey(one, id)
	require.Len(t, k, sessionKeySize)
	require.Equal(t, k, sessionKey(one, id))
	require.NotEqual(t, k, sessionKey(two, id))
	require.NotEqual(t, k, sessionKey(one, "ffeeddccbbaa99887766554433221100"))
	require.Nil(t, sessionKey(one, ""), "token/1")
	require.Nil(t, sessionKey(one, "not hex"))
}
