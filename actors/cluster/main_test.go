package cluster

import (
	"testing"

	"go.uber.org/goleak"
)

// No test here starts a cluster member (Proto.Actor's gossip leaves
// goroutines behind after Shutdown, and two members in one process race
// under -race): the cluster runs as processes in test/cluster.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
