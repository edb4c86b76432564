package tlsio

import "crypto/tls"

// aeadSuites are the TLS 1.2 cipher suites a config built by tlsio offers
// when its TLSConfig sets none: ECDHE key exchange (forward secrecy) with an
// AEAD cipher only. Go's defaults also hold ECDHE suites with AES-CBC and
// HMAC-SHA1, which are left out (CBC with MAC-then-encrypt is the family of
// Lucky Thirteen and POODLE-style padding oracles). Every current TLS stack
// has these, Node and openssl among them. TLS 1.3 suites are not
// configurable in Go and are all AEAD.
var aeadSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}
