package actors

import (
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// onReadPump reports whether the calling goroutine is a read pump's.
func onReadPump() bool {
	buf := make([]byte, 64<<10)
	return strings.Contains(string(buf[:runtime.Stack(buf, false)]), "tlsio.(*ReadPump).run")
}

// The owner whose mailbox the tokens of a chunk wake runs on the read pump
// that read the chunk, not on a worker woken for it (dispatch.Helper): on
// round trips over one connection the server's and the client's token
// callbacks run there, and every reply still comes back, in order.
func TestOwnerRunsOnTheReadPump(t *testing.T) {
	const rounds = 50
	var serverOnPump, clientOnPump atomic.Int32
	srv := listeningServer(t, ServerOptions{
		OnToken: func(tok []byte, c *Connection) {
			if onReadPump() {
				serverOnPump.Add(1)
			}
			c.Send(tok)
		},
	})
	replies := make(chan string, 1)
	cli := connectedClient(t, srv, ClientOptions{
		OnToken: func(tok []byte, _ *Connection) {
			if onReadPump() {
				clientOnPump.Add(1)
			}
			replies <- string(tok)
		},
	})
	for i := range rounds {
		want := "round " + strconv.Itoa(i)
		if !cli.Send([]byte(want)) {
			t.Fatalf("Send %d refused", i)
		}
		if got := recv(t, replies, "reply"); got != want {
			t.Fatalf("reply %q, want %q", got, want)
		}
	}
	if s, c := serverOnPump.Load(), clientOnPump.Load(); s < rounds/2 || c < rounds/2 {
		t.Errorf("token callbacks on a read pump: server %d, client %d of %d round trips; want most", s, c, rounds)
	}
}
