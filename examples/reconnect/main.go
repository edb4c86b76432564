// Command reconnect shows supervised reconnection end to end. With no
// arguments it starts a server and a client with reconnection on, exchanges
// tokens, stops the server, keeps sending while it is down (the tokens wait in
// the client's reconnect buffer), starts the server again on the same port,
// and shows the client reconnecting and the buffered tokens arriving. Every
// lifecycle event is printed with a timestamp. It exits 0 when every token
// sent came back.
//
//	go run ./examples/reconnect
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
)

var start = time.Now()

func logf(format string, args ...any) {
	fmt.Printf("%8.3fs  %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "reconnect:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	certs, err := tlsio.GenerateDevCerts()
	if err != nil {
		return err
	}
	system := actors.NewQuietSystem()

	serverUp := make(chan struct{}, 1)
	serverDown := make(chan struct{}, 1)
	server, err := actors.NewServer(actors.ServerOptions{
		Host: "127.0.0.1", TLS: certs.ServerOptions(), Runtime: actors.Runtime{System: system},
		OnConnect: func() { logf("server: listening"); serverUp <- struct{}{} },
		OnClose:   func(hadError bool) { logf("server: closed (hadError=%v)", hadError); serverDown <- struct{}{} },
		OnToken:   func(token []byte, c *actors.Connection) { c.Send(token) },
	})
	if err != nil {
		return err
	}
	defer server.Shutdown(context.Background())
	if err := waitFor(ctx, serverUp, "server listening"); err != nil {
		return err
	}
	port := server.Addr().(*net.TCPAddr).Port

	policy := actors.DefaultReconnect()
	policy.Policy.Initial = 50 * time.Millisecond
	policy.Policy.Max = 400 * time.Millisecond
	connected := make(chan struct{}, 4)
	attempts := make(chan struct{}, 64)
	echoes := make(chan string, 64)
	client, err := actors.NewClient(actors.ClientOptions{
		Host: "127.0.0.1", Port: port, TLS: certs.ClientOptions(),
		Runtime:       actors.Runtime{System: system},
		Reconnect:     policy,
		OnConnect:     func() { logf("client: connected"); connected <- struct{}{} },
		OnRemoteClose: func(*actors.Connection) { logf("client: remoteClose (server going away)") },
		OnError:       func(err error) { logf("client: error: %v", err) },
		OnClose:       func(hadError bool) { logf("client: closed (hadError=%v)", hadError) },
		OnReconnecting: func(attempt int, delay time.Duration, cause string) {
			logf("client: reconnecting, attempt %d in %v (%s)", attempt, delay.Round(time.Millisecond), cause)
			attempts <- struct{}{}
		},
		OnGaveUp:  func(attempts int, cause string) { logf("client: gave up after %d attempts: %s", attempts, cause) },
		OnDropped: func(tokens [][]byte, reason error) { logf("client: %d tokens dropped: %v", len(tokens), reason) },
		OnToken:   func(token []byte, _ *actors.Connection) { echoes <- string(token) },
	})
	if err != nil {
		return err
	}
	defer client.Shutdown(context.Background())
	if err := waitFor(ctx, connected, "client connected"); err != nil {
		return err
	}

	sent := 0
	send := func(text string) {
		if client.Send([]byte(text)) {
			sent++
			logf("client: sent %q (buffered bytes: %d)", text, client.Buffered())
		} else {
			logf("client: send refused %q", text)
		}
	}
	received := 0
	receive := func(n int) error {
		for ; n > 0; n-- {
			select {
			case e := <-echoes:
				received++
				logf("client: echo %q", e)
			case <-ctx.Done():
				return errors.New("echo did not come back")
			}
		}
		return nil
	}

	send("before the outage #1")
	send("before the outage #2")
	if err := receive(2); err != nil {
		return err
	}

	logf("--- stopping the server")
	server.Close()
	if err := waitFor(ctx, serverDown, "server closed"); err != nil {
		return err
	}
	send("during the outage #1")
	send("during the outage #2")
	send("during the outage #3")
	for i := 0; i < 3; i++ { // let a few reconnect attempts fail, for the show
		if err := waitFor(ctx, attempts, "reconnect attempts"); err != nil {
			return err
		}
	}

	logf("--- starting the server again on port %d", port)
	server.Connect(0)
	if err := waitFor(ctx, serverUp, "server listening again"); err != nil {
		return err
	}
	if err := waitFor(ctx, connected, "client reconnected"); err != nil {
		return err
	}
	if err := receive(3); err != nil {
		return err
	}
	send("after the outage")
	if err := receive(1); err != nil {
		return err
	}
	if err := client.Shutdown(ctx); err != nil {
		return err
	}
	if err := server.Shutdown(ctx); err != nil {
		return err
	}
	logf("sent %d tokens, %d came back", sent, received)
	if sent != received {
		return fmt.Errorf("%d tokens missing", sent-received)
	}
	return nil
}

func waitFor(ctx context.Context, ch <-chan struct{}, what string) error {
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("timed out waiting for %s", what)
	}
}
