package delivery

import (
	"crypto/tls"
	"errors"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/supervisor"
	"github.com/tokenserver/tokenserver/tlsio"
	"github.com/tokenserver/tokenserver/wire"
)

// A token/2 client that connects again writes the tokens its last
// connection did not have acknowledged first, with their numbers, then what
// was sent since: here a token sent while it was away (from its
// OnReconnecting), which waits in its reconnect buffer. A raw server takes
// three tokens without acknowledging them, drops the connection, and
// resumes the session saying it received the first: it must read "2", "3",
// then "new". (The resent frames were once queued after what Send had
// taken: "new" took number 2, which the server would have dropped as
// already received, and "3" came as number 4, a token delivered twice.)
func TestResendGoesBeforeNewTokens(t *testing.T) {
	certs, err := tlsio.GenerateDevCerts()
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certs.ServerCert, certs.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.RequireAnyClientCert, // the client's certificate is the test's own
		NextProtos:   []string{wire.ProtocolToken2},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	type result struct {
		tokens []string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		defer func() { done <- r }()
		fail := func(err error) { r.err = err }
		// First connection: a new session, three tokens read, none
		// acknowledged, then gone.
		c, err := ln.Accept()
		if err != nil {
			fail(err)
			return
		}
		_ = c.SetDeadline(time.Now().Add(deadline))
		h, err := wire.ReadHello(c)
		if err != nil {
			fail(err)
			return
		}
		if _, err := c.Write(wire.AppendWelcome(nil, wire.Welcome{Status: wire.SessionNew})); err != nil {
			fail(err)
			return
		}
		if _, err := readData(c, 3); err != nil {
			fail(err)
			return
		}
		reset(c.(*tls.Conn))
		// Second: the same session, resumed from its first token.
		c, err = ln.Accept()
		if err != nil {
			fail(err)
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(deadline))
		h2, err := wire.ReadHello(c)
		if err != nil {
			fail(err)
			return
		}
		if h2.Session != h.Session {
			r.err = errSession
			return
		}
		if _, err := c.Write(wire.AppendWelcome(nil, wire.Welcome{Status: wire.SessionResumed, Recv: 1})); err != nil {
			fail(err)
			return
		}
		r.tokens, r.err = readData(c, 3)
	}()

	var connects atomic.Int32
	var client atomic.Pointer[actors.Client]
	made := make(chan struct{}) // closed once NewClient returned
	send := func(tok string) {
		select {
		case <-made:
		case <-time.After(deadline):
			return // the test fails on what the server did not get
		}
		client.Load().Send([]byte(tok))
	}
	cl, err := actors.NewClient(actors.ClientOptions{
		Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, TLS: certs.ClientOptions(),
		Reconnect: &actors.ReconnectOptions{
			Policy:     supervisor.Policy{Initial: 100 * time.Millisecond, Max: 200 * time.Millisecond, Multiplier: 2, Unlimited: true},
			BufferSize: 1 << 20,
		},
		OnConnect: func() {
			if connects.Add(1) == 1 {
				for i := 1; i <= 3; i++ {
					send(strconv.Itoa(i))
				}
			}
		},
		OnReconnecting: func(attempt int, _ time.Duration, _ string) {
			if attempt == 1 {
				send("new")
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	client.Store(cl)
	close(made)
	defer shutdown(t, "client", cl.Shutdown)

	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("the raw server: %v", r.err)
		}
		if want := []string{"2", "3", "new"}; len(r.tokens) != 3 || r.tokens[0] != want[0] || r.tokens[1] != want[1] || r.tokens[2] != want[2] {
			t.Fatalf("the resumed connection carried %q, want %q", r.tokens, want)
		}
	case <-time.After(deadline):
		t.Fatal("the raw server did not finish")
	}
}

var errSession = errors.New("the second HELLO names another session")

// readData reads n DATA frames from c (skipping control frames) and
// returns their tokens; it reports an error rather than failing the test,
// so that a raw server's goroutine can use it.
func readData(c net.Conn, n int) ([]string, error) {
	d, _ := wire.NewToken2Decoder(1 << 20)
	buf := make([]byte, 4096)
	var toks []string
	for len(toks) < n {
		k, err := c.Read(buf)
		if err != nil {
			return toks, err
		}
		frames, err := d.AppendFrames(nil, buf[:k])
		if err != nil {
			return toks, err
		}
		for _, f := range frames {
			if f.Kind == wire.KindToken {
				toks = append(toks, string(f.Token))
			}
		}
	}
	return toks, nil
}
