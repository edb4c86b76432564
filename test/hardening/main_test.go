// Package hardening tests tokenserver against hostile and broken peers:
// silent TCP connections, peers that never read, connection floods, random
// faults, garbage, and descriptor leaks. Each test keeps a healthy client
// exchanging tokens throughout and checks that it still works at the end.
package hardening

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
