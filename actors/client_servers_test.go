package actors

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tokenserver/tokenserver/supervisor"
	"github.com/tokenserver/tokenserver/tlsio"
)

// A client with a server list whose server closes reconnects to the other
// server; tokens sent meanwhile wait in the reconnect buffer and arrive
// there, and nothing is reported dropped.
func TestClientServerListSwitch(t *testing.T) {
	certs, err := tlsio.GenerateDevCerts()
	require.NoError(t, err)
	type tokenAt struct {
		server int
		tok    string
	}
	got := make(chan tokenAt, 100)
	var servers []*Server
	var addrs []string
	for i := range 2 {
		up := make(chan struct{}, 1)
		srv, err := NewServer(ServerOptions{
			Host: "127.0.0.1", TLS: certs.ServerOptions(),
			OnConnect: func() { up <- struct{}{} },
			OnToken:   func(tok []byte, c *Connection) { got <- tokenAt{i, string(tok)}; c.Send(tok) },
		})
		require.NoError(t, err)
		recv(t, up, "listening")
		servers = append(servers, srv)
		addrs = append(addrs, net.JoinHostPort("127.0.0.1", strconv.Itoa(srv.Addr().(*net.TCPAddr).Port)))
	}
	connected := make(chan string, 4)
	dropped := make(chan [][]byte, 4)
	pol := supervisor.DefaultPolicy()
	pol.Initial, pol.Max = 10*time.Millisecond, 50*time.Millisecond
	var cli *Client
	ready := make(chan struct{})
	cli, err = NewClient(ClientOptions{
		Servers: addrs, TLS: certs.ClientOptions(),
		Reconnect: &ReconnectOptions{Policy: pol, BufferSize: 1 << 20},
		OnConnect: func() {
			<-ready
			if c := cli.Connection(); c != nil {
				connected <- c.RemoteAddr().String()
			}
		},
		OnDropped: func(tokens [][]byte, _ error) { dropped <- tokens },
	})
	require.NoError(t, err)
	close(ready)
	first := recv(t, connected, "connected")
	i := 0
	if first == addrs[1] {
		i = 1
	}
	require.True(t, cli.Send([]byte("one")))
	require.Equal(t, tokenAt{i, "one"}, recv(t, got, "token one"))

	// The server of the connection closes for good: the client goes to the
	// other one, with what it sent meanwhile.
	require.NoError(t, servers[i].Shutdown(context.Background()))
	require.True(t, cli.Send([]byte("two")))
	require.Equal(t, addrs[1-i], recv(t, connected, "connected to the other server"))
	require.True(t, cli.Send([]byte("three")))
	require.Equal(t, tokenAt{1 - i, "two"}, recv(t, got, "token two"))
	require.Equal(t, tokenAt{1 - i, "three"}, recv(t, got, "token three"))

	require.NoError(t, cli.Shutdown(context.Background()))
	require.NoError(t, servers[1-i].Shutdown(context.Background()))
	select {
	case d := <-dropped:
		t.Fatalf("dropped %q", d)
	default:
	}
}

func TestServersWithHostIsInvalid(t *testing.T) {
	certs, err := tlsio.GenerateDevCerts()
	require.NoError(t, err)
	_, err = NewClient(ClientOptions{Servers: []string{"127.0.0.1:1"}, Host: "localhost", TLS: certs.ClientOptions()})
	require.ErrorIs(t, err, ErrInvalidOptions)
	for _, bad := range []string{"nohost", "h:0"} {
		_, err = NewClient(ClientOptions{Servers: []string{"127.0.0.1:1", bad}, TLS: certs.ClientOptions()})
		require.ErrorIs(t, err, ErrInvalidOptions, "server %q", bad)
	}
}
