package cluster

import (
	"log/slog"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// No test here starts a cluster member (Proto.Actor's gossip leaves
// goroutines behind after Shutdown, and two members in one process race
// under -race): the cluster runs as processes in test/cluster. The remotes
// of the node tests (remote alone, no cluster) are stopped here, before
// the leak check.
func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(guardLog))
	code := m.Run()
	stopTestNodes()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			os.Stderr.WriteString("goleak: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}
