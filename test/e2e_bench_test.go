package test

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
)

// echoPair starts an echo server and a client connected to it, over mutual
// TLS on loopback, in one process. Replies reach the returned channel.
func echoPair(tb testing.TB, replies chan []byte) (*actors.Server, *actors.Client) {
	tb.Helper()
	certs, err := tlsio.GenerateDevCerts()
	if err != nil {
		tb.Fatal(err)
	}
	sys := actors.NewQuietSystem()
	up := make(chan struct{})
	srv, err := actors.NewServer(actors.ServerOptions{
		Host: "127.0.0.1", TLS: certs.ServerOptions(), Runtime: actors.Runtime{System: sys},
		OnConnect: func() { close(up) },
		OnToken:   func(t []byte, c *actors.Connection) { c.Send(t) },
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { shutdown(tb, srv.Shutdown) })
	waitClosed(tb, up, "server listening")
	connected := make(chan struct{})
	cli, err := actors.NewClient(actors.ClientOptions{
		Host: "127.0.0.1", Port: srv.Addr().(*net.TCPAddr).Port,
		TLS: certs.ClientOptions(), Runtime: actors.Runtime{System: sys},
		OnConnect: func() { close(connected) },
		OnToken:   func(t []byte, _ *actors.Connection) { replies <- t },
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { shutdown(tb, cli.Shutdown) })
	waitClosed(tb, connected, "client connected")
	return srv, cli
}

func shutdown(tb testing.TB, f func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f(ctx); err != nil {
		tb.Errorf("shutdown: %v", err)
	}
}

func timeout() <-chan time.Time { return time.After(10 * time.Second) }

func waitClosed(tb testing.TB, ch <-chan struct{}, what string) {
	tb.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		tb.Fatalf("timed out waiting for %s", what)
	}
}

// BenchmarkRoundTrip64B: one token at a time, waiting for each echo.
func BenchmarkRoundTrip64B(b *testing.B) {
	replies := make(chan []byte, 1)
	_, cli := echoPair(b, replies)
	tok := bytes.Repeat([]byte{'r'}, 64)
	b.SetBytes(64)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if !cli.Send(tok) {
			b.Fatal("send refused")
		}
		<-replies
	}
}

// BenchmarkPipelined: tokens sent without waiting, a window of them in flight.
func BenchmarkPipelined(b *testing.B) {
	for _, size := range []int{16, 1024, 64 << 10, 1 << 20} {
		b.Run(byteSize(size), func(b *testing.B) {
			const window = 512
			replies := make(chan []byte, window)
			_, cli := echoPair(b, replies)
			tok := bytes.Repeat([]byte{'p'}, size)
			b.SetBytes(int64(size))
			b.ResetTimer()
			inFlight := 0
			for i := 0; i < b.N; i++ {
				for inFlight >= window || (window*size > 4<<20 && inFlight*size >= 4<<20) {
					<-replies
					inFlight--
				}
				if !cli.Send(tok) {
					b.Fatal("send refused")
				}
				inFlight++
			}
			for ; inFlight > 0; inFlight-- {
				<-replies
			}
		})
	}
}

func byteSize(n int) string {
	switch {
	case n >= 1<<20:
		return itoa(n>>20) + "MiB"
	case n >= 1<<10:
		return itoa(n>>10) + "KiB"
	}
	return itoa(n) + "B"
}

func itoa(n int) string { return strconv.Itoa(n) }
