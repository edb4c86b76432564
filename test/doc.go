// Package test holds tokenserver's end-to-end tests: conformance with the
// behaviour of npm token-server 1.0.10 over real TLS sockets on loopback,
// interoperability with the original Node.js package, chaos tests and
// benchmarks. It has no code of its own outside tests.
package test
