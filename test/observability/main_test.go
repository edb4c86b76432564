// Package observability tests the runtime's metrics end to end: the
// OpenTelemetry Prometheus exporter wired into a server and a client, real
// traffic over TLS on loopback, and a scrape over HTTP.
package observability

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
