// Command echo is tokenserver's main job in miniature. With no arguments and
// no files it generates development certificates in memory, starts a server
// on a free loopback port with client certificates required, connects a
// client, sends a few tokens (one with newlines and backslashes, an empty one,
// one of 1 MiB), prints each echoed reply, closes both cleanly and exits 0.
//
//	go run ./examples/echo
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
}

func run() error {
	certs, err := tlsio.GenerateDevCerts()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	system := actors.NewQuietSystem()
	listening := make(chan struct{})
	server, err := actors.NewServer(actors.ServerOptions{
		Host:      "127.0.0.1",
		TLS:       certs.ServerOptions(), // requestCert: clients must show a certificate
		Runtime:   actors.Runtime{System: system},
		OnConnect: func() { close(listening) },
		OnToken: func(token []byte, c *actors.Connection) {
			c.Send(token) // echo
		},
		OnError: func(err error) { fmt.Println("server error:", err) },
	})
	if err != nil {
		return err
	}
	defer server.Shutdown(context.Background())
	select {
	case <-listening:
	case <-ctx.Done():
		return errors.New("server did not start listening")
	}
	port := server.Addr().(*net.TCPAddr).Port
	fmt.Println("server listening on", server.Addr())

	replies := make(chan []byte, 16)
	connected := make(chan struct{})
	client, err := actors.NewClient(actors.ClientOptions{
		Host:      "127.0.0.1",
		Port:      port,
		TLS:       certs.ClientOptions(),
		Runtime:   actors.Runtime{System: system},
		OnConnect: func() { close(connected) },
		OnToken:   func(token []byte, _ *actors.Connection) { replies <- token },
		OnError:   func(err error) { fmt.Println("client error:", err) },
	})
	if err != nil {
		return err
	}
	defer client.Shutdown(context.Background())
	select {
	case <-connected:
	case <-ctx.Done():
		return errors.New("client did not connect")
	}
	fmt.Println("client connected with its certificate")

	tokens := [][]byte{
		[]byte("hello, token server"),
		[]byte("line one\nline two\\with a backslash\n"),
		{},
		bytes.Repeat([]byte("0123456789abcdef"), 1<<16), // 1 MiB
	}
	for _, tok := range tokens {
		if !client.Send(tok) {
			return errors.New("send refused")
		}
		select {
		case got := <-replies:
			if !bytes.Equal(got, tok) {
				return fmt.Errorf("echo of %d bytes came back different", len(tok))
			}
			fmt.Printf("echoed %7d bytes: %s\n", len(got), preview(got))
		case <-ctx.Done():
			return errors.New("no echo in time")
		}
	}

	if err := client.Shutdown(ctx); err != nil {
		return err
	}
	if err := server.Shutdown(ctx); err != nil {
		return err
	}
	fmt.Println("client and server closed cleanly")
	return nil
}

func preview(b []byte) string {
	if len(b) > 40 {
		return strconv.Quote(string(b[:40])) + "..."
	}
	return strconv.Quote(string(b))
}
