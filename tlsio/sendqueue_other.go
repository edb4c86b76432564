//go:build !linux

package tlsio

import "net"

// sendQueueProbe: only Linux tells a socket's send queue here; elsewhere
// WritePump.WriteNow never writes.
func sendQueueProbe(net.Conn) func() bool { return nil }
