package delivery

import (
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
	"github.com/tokenserver/tokenserver/wire"
)

// A token/2 client that loses its socket and never comes back: the server
// keeps its session for SessionTimeout, its Connection takes tokens
// meanwhile (Send is true), and then the session ends: an error event
// matching actors.ErrSessionExpired, a close with hadError, and every token
// the client never acknowledged (the ones written before the loss and the
// ones sent after it) reported dropped with ErrSessionExpired, in order,
// and none of them left in its Connection's Queued().
func TestExpiredSessionReportsWhatItHeld(t *testing.T) {
	certs, err := tlsio.GenerateDevCerts()
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var dropped []string
	var reason error
	conns := make(chan *actors.Connection, 1)
	errs, closes := make(chan error, 4), make(chan bool, 4)
	srv, err := actors.NewServer(actors.ServerOptions{
		Host: "127.0.0.1", TLS: certs.ServerOptions(), SessionTimeout: 300 * time.Millisecond,
		OnConnection:      func(c *actors.Connection) { conns <- c },
		OnConnectionError: func(_ *actors.Connection, err error) { errs <- err },
		OnConnectionClose: func(_ *actors.Connection, had bool) { closes <- had },
		OnDropped: func(_ *actors.Connection, toks [][]byte, r error) {
			mu.Lock()
			for _, t := range toks {
				dropped = append(dropped, string(t))
			}
			reason = r
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, "server", srv.Shutdown)
	within(t, "the server listening", func() bool { return srv.Addr() != nil })

	// A raw token/2 client that reads what it is sent and acknowledges
	// nothing, then loses its socket.
	c := dialToken2(t, srv.Addr().String(), certs.ClientCert, certs.ClientKey)
	greet(t, c, wire.Hello{Session: wire.SessionID{9}, First: 1})
	var conn *actors.Connection
	select {
	case conn = <-conns:
	case <-time.After(deadline):
		t.Fatal("no connection event")
	}
	if conn.Protocol() != actors.ProtocolToken2 {
		t.Fatalf("Protocol() %q, want token/2", conn.Protocol())
	}
	for _, tok := range []string{"one", "two"} {
		if !conn.Send([]byte(tok)) {
			t.Fatalf("Send(%q) refused", tok)
		}
	}
	readTokens(t, c, 2)
	reset(c)
	// The session waits: Send still takes tokens.
	within(t, "the session to lose its socket", func() bool { return srv.Stats().Open == 1 && conn.Queued() > 0 })
	if conn.IsDead() || !conn.Send([]byte("three")) {
		t.Fatal("the waiting session refused a token")
	}
	errorEvent(t, errs, actors.ErrSessionExpired, "the session's expiry")
	select {
	case had := <-closes:
		if !had {
			t.Error("close after ErrSessionExpired with hadError false")
		}
	case <-time.After(deadline):
		t.Fatal("no close event after the expiry")
	}
	if q := conn.Queued(); q != 0 {
		t.Errorf("Queued() %d after the session ended and reported its tokens, want 0", q)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"one", "two", "three"}; len(dropped) != 3 || dropped[0] != want[0] || dropped[1] != want[1] || dropped[2] != want[2] || !errors.Is(reason, actors.ErrSessionExpired) {
		t.Fatalf("dropped %q with %v, want %q with ErrSessionExpired", dropped, reason, want)
	}
	if st := srv.Stats(); st.SessionsExpired != 1 || st.Open != 0 || st.Dropped[actors.CodeSessionExpired] != 3 {
		t.Errorf("Stats: expired %d, open %d, dropped %v; want 1, 0 and 3 session_expired", st.SessionsExpired, st.Open, st.Dropped)
	}
}

// readTokens reads k tokens the server sends, acknowledging none.
func readTokens(t *testing.T, c net.Conn, k int) {
	t.Helper()
	if _, err := readData(c, k); err != nil {
		t.Fatalf("reading %d tokens: %v", k, err)
	}
}

// A session that expires holding nothing (its client acknowledged, or was
// sent, nothing) reports its end and no dropped tokens: no OnDropped call
// with an empty list.
func TestExpiredSessionHoldingNothingReportsNoDrop(t *testing.T) {
	certs, err := tlsio.GenerateDevCerts()
	if err != nil {
		t.Fatal(err)
	}
	drops := make(chan int, 4)
	errs, closes := make(chan error, 4), make(chan bool, 4)
	srv, err := actors.NewServer(actors.ServerOptions{
		Host: "127.0.0.1", TLS: certs.ServerOptions(), SessionTimeout: 100 * time.Millisecond,
		OnConnectionError: func(_ *actors.Connection, err error) { errs <- err },
		OnConnectionClose: func(_ *actors.Connection, had bool) { closes <- had },
		OnDropped:         func(_ *actors.Connection, toks [][]byte, _ error) { drops <- len(toks) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, "server", srv.Shutdown)
	within(t, "the server listening", func() bool { return srv.Addr() != nil })

	c := dialToken2(t, srv.Addr().String(), certs.ClientCert, certs.ClientKey)
	greet(t, c, wire.Hello{Session: wire.SessionID{10}, First: 1})
	within(t, "the session open", func() bool { return srv.Stats().Open == 1 })
	reset(c)
	errorEvent(t, errs, actors.ErrSessionExpired, "the session's expiry")
	select {
	case <-closes: // dropped tokens, if any, are reported before the close
	case <-time.After(deadline):
		t.Fatal("no close event after the expiry")
	}
	select {
	case n := <-drops:
		t.Fatalf("OnDropped called with %d tokens for a session that held none", n)
	default:
	}
	if st := srv.Stats(); st.SessionsExpired != 1 || len(st.Dropped) != 0 {
		t.Errorf("Stats: expired %d, dropped %v; want 1 and none", st.SessionsExpired, st.Dropped)
	}
}
