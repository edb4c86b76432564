package actors

import (
	"context"
	"crypto/tls"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tokenserver/tokenserver/supervisor"
	"github.com/tokenserver/tokenserver/tlsio"
	"github.com/tokenserver/tokenserver/wire"
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

// A client whose token/2 server goes away with tokens it read and never
// acknowledged, and whose next server speaks only token/1 (the Node
// original in its server list), sends those tokens to that server, in
// order, as token/1 frames, and reports none dropped.
func TestClientServerListToken1AfterToken2(t *testing.T) {
	cfg := serverTLS(t).Clone()
	cfg.NextProtos = []string{wire.ProtocolToken2}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	require.NoError(t, err)
	defer ln.Close()
	read := make(chan []string, 1)
	go func() {
		toks, err := readUnacknowledged(ln, 3)
		if err != nil {
			t.Errorf("raw token/2 server: %v", err)
		}
		read <- toks
	}()

	port1 := freePort(t) // the token/1 server's, not listening yet
	connects := make(chan struct{}, 4)
	dropped := make(chan [][]byte, 4)
	cli, err := NewClient(ClientOptions{
		Servers: []string{ln.Addr().String(), net.JoinHostPort("127.0.0.1", strconv.Itoa(port1))},
		TLS:     testCerts(t).ClientOptions(), Reconnect: &ReconnectOptions{Policy: fastRetry(5*time.Millisecond, 20*time.Millisecond), BufferSize: 1 << 20},
		OnConnect: func() { put(t, connects, struct{}{}) },
		OnDropped: func(tokens [][]byte, _ error) { put(t, dropped, tokens) },
	})
	require.NoError(t, err)
	defer shutdownWithin(t, "client", cli.Shutdown)
	recv(t, connects, "connected to the token/2 server")
	for _, tok := range []string{"one", "two", "three"} {
		require.True(t, cli.Send([]byte(tok)))
	}
	toks, _ := awaitIn(t, read, "the raw server's tokens")
	require.Equal(t, []string{"one", "two", "three"}, toks)

	got := make(chan string, 8)
	listeningServer(t, ServerOptions{Port: port1, Protocols: []string{wire.ProtocolToken1},
		OnToken: func(tok []byte, _ *Connection) { put(t, got, string(tok)) }})
	recv(t, connects, "connected to the token/1 server")
	for _, want := range []string{"one", "two", "three"} {
		require.Equal(t, want, recv(t, got, "a token sent again"))
	}
	none(t, got, 100*time.Millisecond, "a token twice")
	none(t, dropped, 0, "a token reported dropped")
}

// readUnacknowledged accepts one token/2 connection on ln, opens a new
// session, reads n tokens without acknowledging any, closes ln (so that
// the client goes to its other server) and resets the connection.
func readUnacknowledged(ln net.Listener, n int) ([]string, error) {
	c, err := ln.Accept()
	ln.Close()
	if err != nil {
		return nil, err
	}
	defer func() {
		_ = c.(*tls.Conn).NetConn().(*net.TCPConn).SetLinger(0)
		c.Close()
	}()
	_ = c.SetDeadline(time.Now().Add(deadline))
	if _, err := wire.ReadHello(c); err != nil {
		return nil, err
	}
	if _, err := c.Write(wire.AppendWelcome(nil, wire.Welcome{Status: wire.SessionNew})); err != nil {
		return nil, err
	}
	return readToken2s(c, n)
}
