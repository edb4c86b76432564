// Package chaos holds tests of tokenserver under failure: servers killed and
// restarted under load, handlers that panic, clients closed mid-backoff.
package chaos

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
