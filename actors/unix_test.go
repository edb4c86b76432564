package actors

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tokenserver/tokenserver/tlsio"
)

// A server and a client over a Unix domain socket (Node's path option): a
// round trip, then the server removes its socket file on close.
func TestUnixSocketRoundTrip(t *testing.T) {
	certs, err := tlsio.GenerateDevCerts()
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "token.sock")
	up, closed := make(chan struct{}, 1), make(chan bool, 1)
	srv, err := NewServer(ServerOptions{
		Path: path, TLS: certs.ServerOptions(),
		OnConnect: func() { up <- struct{}{} },
		OnClose:   func(had bool) { closed <- had },
		OnToken:   func(tok []byte, c *Connection) { c.Send(tok) },
	})
	require.NoError(t, err)
	recv(t, up, "listening")
	require.Equal(t, "unix", srv.Addr().Network())
	require.Equal(t, path, srv.Addr().String())

	replies := make(chan []byte, 1)
	connected := make(chan struct{}, 1)
	cli, err := NewClient(ClientOptions{
		Path: path, TLS: certs.ClientOptions(),
		OnConnect: func() { connected <- struct{}{} },
		OnToken:   func(tok []byte, _ *Connection) { replies <- tok },
	})
	require.NoError(t, err)
	recv(t, connected, "client connected")
	require.True(t, cli.Send([]byte("over a unix\nsocket")))
	require.Equal(t, "over a unix\nsocket", string(recv(t, replies, "echo")))

	require.NoError(t, cli.Shutdown(context.Background()))
	require.NoError(t, srv.Shutdown(context.Background()))
	require.False(t, recv(t, closed, "server close"))
	_, err = os.Stat(path)
	require.ErrorIs(t, err, os.ErrNotExist, "the server removed its socket file")
}

func TestPathWithHostOrPortIsInvalid(t *testing.T) {
	certs, err := tlsio.GenerateDevCerts()
	require.NoError(t, err)
	_, err = NewServer(ServerOptions{Path: "x.sock", Port: 1, TLS: certs.ServerOptions()})
	require.ErrorIs(t, err, ErrInvalidOptions)
	_, err = NewClient(ClientOptions{Path: "x.sock", Host: "localhost", TLS: certs.ClientOptions()})
	require.ErrorIs(t, err, ErrInvalidOptions)
}
