// Package flowcontrol tests the flow control of tokenserver end to end, over
// real mutual TLS on loopback: a peer slower than its producer is pushed back
// (the connection stops reading past the high-water mark) and never cut; a
// handler PID holds at most its read window until it returns credit; only a
// peer that reads nothing (the write timeout) or falls too far behind (the
// hard cap of the queue) is cut as a slow consumer; and every token Send
// took is written or reported dropped. Heap figures are measured with
// runtime.MemStats and logged with t.Logf.
package flowcontrol

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The test binary run again as a child process: it is an echo server
	// whose heap is measured alone (see child_test.go).
	if os.Getenv(childEnv) != "" {
		os.Exit(runChildServer())
	}
	goleak.VerifyTestMain(m)
}
