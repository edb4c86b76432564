//go:build linux

package cluster

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that the clients leave no goroutine behind, and removes
// the binary built for the package. The cluster members are other
// processes: Proto.Actor's cluster leaks gossip goroutines past Shutdown,
// so it never runs inside a test process.
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			os.Stderr.WriteString("goleak: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}
