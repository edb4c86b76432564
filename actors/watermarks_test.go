package actors

import (
	"fmt"
	"testing"
)

// With the smallest marks (HighWaterMark 1, so LowWaterMark 0) a server
// that echoes pauses its reading at nearly every reply and resumes once
// everything is written: every token is echoed, on both protocols, and
// the server's reading is never left paused.
func TestSmallestWaterMarksResume(t *testing.T) {
	for _, proto := range []string{ProtocolToken1, ProtocolToken2} {
		t.Run(proto, func(t *testing.T) {
			const tokens = 200
			srv := listeningServer(t, ServerOptions{Limits: Limits{HighWaterMark: 1},
				OnToken: func(tok []byte, c *Connection) { c.Send(tok) }})
			echoed := make(chan struct{}, tokens)
			cli := connectedClient(t, srv, ClientOptions{Protocols: []string{proto},
				OnToken: func([]byte, *Connection) { put(t, echoed, struct{}{}) }})
			for i := range tokens { // 1 KiB each: the server reads them in many chunks
				if !cli.Send(fmt.Appendf(make([]byte, 0, 1<<10), "%-1024d", i)) {
					t.Fatalf("Send %d refused", i)
				}
			}
			for i := range tokens {
				recv(t, echoed, fmt.Sprintf("echo %d of %d", i+1, tokens))
			}
		})
	}
}
