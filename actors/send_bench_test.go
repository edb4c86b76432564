package actors

import (
	"io"
	"net"
	"testing"
	"time"
)

// BenchmarkSendLargeToken measures what Send costs its caller for a token
// just under pieceFrom (escaped on the caller's goroutine) and one at
// pieceFrom (copied, and escaped by the connection actor in pieces), in the
// same run: compare their send-ns/KiB. The tokens need escaping one byte
// in 3.5 (numbered's filler). Each Send waits for the queue to empty first,
// so that it measures Send alone, not the write of the one before.
func BenchmarkSendLargeToken(b *testing.B) {
	for _, tc := range []struct {
		name string
		size int
	}{{"escaped-by-Send", pieceFrom - 1}, {"in-pieces", pieceFrom}} {
		b.Run(tc.name, func(b *testing.B) {
			a, p := net.Pipe()
			go func() { _, _ = io.Copy(io.Discard, p) }()
			c, err := NewConnection(a, ConnectionOptions{})
			if err != nil {
				b.Fatal(err)
			}
			tok := numbered(1, tc.size)
			var in time.Duration
			for b.Loop() {
				for c.Queued() > 0 {
					time.Sleep(20 * time.Microsecond)
				}
				t0 := time.Now()
				if !c.Send(tok) {
					b.Fatal("Send refused a token")
				}
				in += time.Since(t0)
			}
			b.ReportMetric(float64(in.Nanoseconds())/float64(b.N)/float64(tc.size>>10), "send-ns/KiB")
			c.Close()
			_ = p.Close()
		})
	}
}
