package delivery

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The test binary run again as a child process: a server that is
	// killed and started again (restart_test.go).
	if os.Getenv(childEnv) != "" {
		os.Exit(runChildServer())
	}
	goleak.VerifyTestMain(m)
}
