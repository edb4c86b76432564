package actors_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/supervisor"
	"github.com/tokenserver/tokenserver/tlsio"
)

// An echo server and a client over mutual TLS on loopback, with callbacks.
func ExampleNewServer() {
	certs, err := tlsio.GenerateDevCerts() // in memory; from files: tlsio.LoadServerFiles, tlsio.LoadFiles
	if err != nil {
		panic(err)
	}
	// Every wait below gives up after 10 s, as a program's should.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	listening := make(chan struct{})
	srv, err := actors.NewServer(actors.ServerOptions{
		Host:      "127.0.0.1", // Port 0: the system picks one (see Addr)
		TLS:       certs.ServerOptions(),
		OnConnect: func() { close(listening) },
		OnToken: func(token []byte, c *actors.Connection) {
			c.Send(bytes.ToUpper(token)) // the reply goes back on the token's connection
		},
	})
	if err != nil {
		panic(err)
	}
	select {
	case <-listening:
	case <-ctx.Done():
		panic(ctx.Err())
	}

	connected, replied := make(chan struct{}), make(chan struct{})
	cli, err := actors.NewClient(actors.ClientOptions{
		Host: "127.0.0.1", Port: srv.Addr().(*net.TCPAddr).Port,
		TLS:       certs.ClientOptions(),
		OnConnect: func() { close(connected) },
		OnToken: func(token []byte, _ *actors.Connection) {
			fmt.Printf("%s\n", token)
			close(replied)
		},
	})
	if err != nil {
		panic(err)
	}
	select { // Send returns false while not connected, as in the original
	case <-connected:
	case <-ctx.Done():
		panic(ctx.Err())
	}
	cli.Send([]byte("hello,\ntoken server"))
	select {
	case <-replied:
	case <-ctx.Done():
		panic(ctx.Err())
	}

	_ = cli.Shutdown(ctx)
	_ = srv.Shutdown(ctx)
	// Output:
	// HELLO,
	// TOKEN SERVER
}

// replier is a handler actor: it answers each token by sending SendToken to
// the token's connection. Its props use actors.CreditMiddleware (through
// actors.HandlerProps), which returns flow-control credit for every token
// it has processed.
type replier struct{}

func (replier) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actors.TokenReceived:
		ctx.Send(m.Conn, &actors.SendToken{Data: append([]byte("handled: "), m.Data...)})
	}
}

// A server whose events go to a handler actor (a PID, which could live on
// another node) instead of callbacks.
func ExampleServerOptions_handler() {
	certs, err := tlsio.GenerateDevCerts()
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	system := actors.NewQuietSystem()
	handler := system.Root.Spawn(actors.HandlerProps(func() actor.Actor { return replier{} }))

	listening := make(chan struct{})
	srv, err := actors.NewServer(actors.ServerOptions{
		Host: "127.0.0.1", TLS: certs.ServerOptions(),
		Runtime:   actors.Runtime{System: system},
		Handler:   handler,
		OnConnect: func() { close(listening) },
	})
	if err != nil {
		panic(err)
	}
	select {
	case <-listening:
	case <-ctx.Done():
		panic(ctx.Err())
	}

	connected, replies := make(chan struct{}), make(chan []byte, 1)
	cli, err := actors.NewClient(actors.ClientOptions{
		Host: "127.0.0.1", Port: srv.Addr().(*net.TCPAddr).Port, TLS: certs.ClientOptions(),
		Runtime:   actors.Runtime{System: system},
		OnConnect: func() { close(connected) },
		OnToken:   func(token []byte, _ *actors.Connection) { replies <- token },
	})
	if err != nil {
		panic(err)
	}
	select {
	case <-connected:
	case <-ctx.Done():
		panic(ctx.Err())
	}
	cli.Send([]byte("a token"))
	select {
	case reply := <-replies:
		fmt.Printf("%s\n", reply)
	case <-ctx.Done():
		panic(ctx.Err())
	}

	_ = cli.Shutdown(ctx)
	_ = srv.Shutdown(ctx)
	_ = system.Root.StopFuture(handler).Wait()
	system.Shutdown()
	// Output:
	// handled: a token
}

// A client with reconnection keeps tokens while the server is away, sends
// them in order once connected, and reports every token it cannot keep.
func ExampleClientOptions_reconnect() {
	certs, err := tlsio.GenerateDevCerts()
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A port where nothing listens yet.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	policy := supervisor.DefaultPolicy()
	policy.Initial, policy.Max = 10*time.Millisecond, 50*time.Millisecond
	dropped, replied := make(chan string, 1), make(chan struct{})
	cli, err := actors.NewClient(actors.ClientOptions{
		Host: "127.0.0.1", Port: port, TLS: certs.ClientOptions(),
		Reconnect: &actors.ReconnectOptions{Policy: policy, BufferSize: 16},
		OnDropped: func(tokens [][]byte, reason error) {
			dropped <- fmt.Sprintf("dropped %q: %s", tokens, actors.ErrorCode(reason))
		},
		OnToken: func(token []byte, _ *actors.Connection) {
			fmt.Printf("reply %q\n", token)
			close(replied)
		},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(cli.Send([]byte("first")))                         // kept in the buffer
	fmt.Println(cli.Send([]byte("too long for a 16-byte buffer"))) // reported:
	select {
	case d := <-dropped:
		fmt.Println(d)
	case <-ctx.Done():
		panic(ctx.Err())
	}

	listening := make(chan struct{})
	srv, err := actors.NewServer(actors.ServerOptions{
		Host: "127.0.0.1", Port: port, TLS: certs.ServerOptions(),
		OnConnect: func() { close(listening) },
		OnToken:   func(token []byte, c *actors.Connection) { c.Send(token) },
	})
	if err != nil {
		panic(err)
	}
	select {
	case <-listening:
	case <-ctx.Done():
		panic(ctx.Err())
	}
	select {
	case <-replied:
	case <-ctx.Done():
		panic(ctx.Err())
	}

	_ = cli.Shutdown(ctx)
	_ = srv.Shutdown(ctx)
	// Output:
	// true
	// false
	// dropped ["too long for a 16-byte buffer"]: buffer_full
	// reply "first"
}
