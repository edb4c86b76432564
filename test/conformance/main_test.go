// Package conformance states each behaviour of npm token-server 1.0.10
// (TokenServer, TokenClient, Connection) as a Go test of the tokenserver
// runtime, over real mutual TLS on loopback (and net.Pipe for the bare
// Connection), plus the bad-input guarantees of the design.
package conformance

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
