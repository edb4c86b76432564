// Package fuzz drives a whole server connection, over real mutual TLS on
// loopback, with arbitrary bytes after the handshake.
package fuzz

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
	"github.com/tokenserver/tokenserver/wire"
	"go.uber.org/goleak"
)

const maxTokenSize = 4096

// One echo server per process, shut down before the leak check.
var (
	once   sync.Once
	srv    *actors.Server
	certs  *tlsio.DevCerts
	events = make(chan event, 1024)
)

type event struct {
	err      error
	closed   bool
	hadError bool
}

func server(t *testing.T) *actors.Server {
	once.Do(func() {
		var err error
		certs, err = tlsio.GenerateDevCerts()
		if err != nil {
			panic(err)
		}
		up := make(chan struct{})
		srv, err = actors.NewServer(actors.ServerOptions{
			Host: "127.0.0.1", TLS: certs.ServerOptions(),
			Limits:    actors.Limits{MaxTokenSize: maxTokenSize, CloseTimeout: time.Second},
			Runtime:   actors.Runtime{System: actors.NewQuietSystem()},
			OnConnect: func() { close(up) },
			OnToken:   func(tok []byte, c *actors.Connection) { c.Send(tok) },
			OnConnectionError: func(_ *actors.Connection, err error) {
				events <- event{err: err}
			},
			OnConnectionClose: func(_ *actors.Connection, had bool) {
				events <- event{closed: true, hadError: had}
			},
		})
		if err != nil {
			panic(err)
		}
		select {
		case <-up:
		case <-time.After(10 * time.Second):
			panic("server did not listen")
		}
	})
	return srv
}

func TestMain(m *testing.M) {
	code := m.Run()
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = srv.Shutdown(ctx)
		cancel()
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// FuzzServerConnection sends arbitrary bytes on a mutual-TLS connection to
// an echo server and checks: the server echoes exactly the tokens that decode
// before any error, reports an error event (then close with hadError) when
// the input is not valid token/1, closes cleanly otherwise, and stays up.
func FuzzServerConnection(f *testing.F) {
	for _, seed := range []string{"", "a\n", "a\nb\n\n", "\\\n", "\\x\n", "ok\n\\", "no newline",
		"esc\\\\ and \\n\n", string(bytes.Repeat([]byte("z"), maxTokenSize+10))} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		s := server(t)
		port := s.Addr().(*net.TCPAddr).Port
		cfg, err := tlsio.ClientConfig(certs.ClientOptions())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := tlsio.Dial(ctx, fmt.Sprintf("127.0.0.1:%d", port), cfg, tlsio.DialConfig{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()

		// What the server must echo: the tokens decoded before any error.
		dec, _ := wire.NewDecoder(maxTokenSize)
		frames, decErr := dec.AppendFrames(nil, input)
		var want []byte
		for _, fr := range frames {
			if fr.Kind == wire.KindToken {
				want = wire.AppendToken(want, fr.Token)
			}
		}
		bad := decErr != nil || dec.Buffered() > 0

		got := make(chan []byte, 1)
		go func() {
			var all bytes.Buffer
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, _ = all.ReadFrom(c)
			got <- all.Bytes()
		}()
		if _, err := c.Write(input); err != nil && !bad {
			t.Fatalf("write: %v", err)
		}
		_ = c.CloseWrite()
		echoed := <-got
		if !bad && !bytes.Equal(echoed, want) {
			t.Fatalf("echo %q, want %q", echoed, want)
		}
		if bad && !bytes.HasPrefix(want, echoed) {
			t.Fatalf("echo %q is not a prefix of %q", echoed, want)
		}
		// The connection's events: error then close(true), or close(false).
		select {
		case ev := <-events:
			switch {
			case bad && ev.err == nil:
				t.Fatalf("bad input %q: no error event", input)
			case !bad && ev.err != nil:
				t.Fatalf("valid input %q: error %v", input, ev.err)
			case bad && !errors.Is(ev.err, actors.ErrProtocol):
				t.Fatalf("bad input %q: error %v is not a protocol error", input, ev.err)
			}
			if bad {
				ev = <-events
			}
			if !ev.closed || ev.hadError != bad {
				t.Fatalf("close event %+v, want hadError=%v", ev, bad)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no event")
		}
		if s.Status() != actors.ONLINE {
			t.Fatalf("server status %v", s.Status())
		}
	})
}
