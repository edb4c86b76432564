package actors

import (
	"net"
	"testing"
)

// A client dials the Host it is given, not the default: a server that
// listens on 127.0.0.2 only (another loopback address) is reached at
// 127.0.0.2, and nothing listens at localhost on its port.
func TestClientDialsItsHost(t *testing.T) {
	listening := make(chan struct{}, 1)
	srv, err := NewServer(ServerOptions{
		Host: "127.0.0.2", TLS: testCerts(t).ServerOptions(),
		OnConnect: func() { put(t, listening, struct{}{}) },
		OnToken:   func(tok []byte, c *Connection) { c.Send(tok) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer shutdownWithin(t, "server", srv.Shutdown)
	recv(t, listening, "listening")
	port := srv.Addr().(*net.TCPAddr).Port
	if !refuses(port) {
		t.Skipf("something listens at 127.0.0.1:%d too", port)
	}
	connected, echoes := make(chan struct{}, 1), make(chan []byte, 1)
	tlsOpts := testCerts(t).ClientOptions()
	tlsOpts.ServerName = "127.0.0.1" // the test certificate's address
	cli, err := NewClient(ClientOptions{
		Host: "127.0.0.2", Port: port, TLS: tlsOpts,
		OnConnect: func() { put(t, connected, struct{}{}) },
		OnToken:   func(tok []byte, _ *Connection) { put(t, echoes, tok) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer shutdownWithin(t, "client", cli.Shutdown)
	recv(t, connected, "connected to 127.0.0.2")
	if !cli.Send([]byte("there")) {
		t.Fatal("Send refused")
	}
	if got := recv(t, echoes, "the echo"); string(got) != "there" {
		t.Fatalf("echo %q", got)
	}
}
