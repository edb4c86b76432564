package test

import (
	"fmt"
	"net"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
)

// OnTokens gets the tokens of each read at once and SendBatch sends them
// back in one message: every token still comes back, in order.
func TestBatchEchoKeepsOrder(t *testing.T) {
	certs, err := tlsio.GenerateDevCerts()
	require.NoError(t, err)
	sys := actors.NewQuietSystem()
	up := make(chan struct{})
	batches := make(chan int, 10000)
	srv, err := actors.NewServer(actors.ServerOptions{
		Host: "127.0.0.1", TLS: certs.ServerOptions(), Runtime: actors.Runtime{System: sys},
		OnConnect: func() { close(up) },
		OnToken:   func([]byte, *actors.Connection) { t.Error("OnToken called although OnTokens is set") },
		OnTokens: func(toks [][]byte, c *actors.Connection) {
			batches <- len(toks)
			if !c.SendBatch(toks) { // t.Error, not require: this runs on an actor goroutine
				t.Errorf("SendBatch refused %d tokens", len(toks))
			}
		},
	})
	require.NoError(t, err)
	t.Cleanup(func() { shutdown(t, srv.Shutdown) })
	waitClosed(t, up, "listening")

	replies := make(chan []byte, 10000)
	connected := make(chan struct{})
	cli, err := actors.NewClient(actors.ClientOptions{
		Host: "127.0.0.1", Port: srv.Addr().(*net.TCPAddr).Port, TLS: certs.ClientOptions(),
		Runtime:   actors.Runtime{System: sys},
		OnConnect: func() { close(connected) },
		OnToken:   func(tok []byte, _ *actors.Connection) { replies <- tok },
	})
	require.NoError(t, err)
	t.Cleanup(func() { shutdown(t, cli.Shutdown) })
	waitClosed(t, connected, "connected")

	const n = 5000
	for i := 0; i < n; i++ {
		require.True(t, cli.Send([]byte(fmt.Sprintf("token %d\n\\", i))))
	}
	for i := 0; i < n; i++ {
		select {
		case got := <-replies:
			require.Equal(t, fmt.Sprintf("token %d\n\\", i), string(got))
		case <-timeout():
			t.Fatalf("reply %d missing", i)
		}
	}
	total, calls := 0, 0
	for len(batches) > 0 {
		total += <-batches
		calls++
	}
	require.Equal(t, n, total)
	require.Less(t, calls, n, "tokens arrive in batches, not one call each")
	conn := srv.Connections()[0]
	require.True(t, conn.SendBatch(nil), "an empty batch on a live connection")
	require.True(t, conn.Close())
	require.False(t, conn.SendBatch([][]byte{[]byte("late")}), "dead connection")
}
