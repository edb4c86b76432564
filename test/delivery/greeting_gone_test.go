package delivery

import (
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/wire"
)

// A client's new connection to its session can die in its greeting, after
// its HELLO reached the server and before its socket reached the session:
// the server decided too late (here it was busy in a callback longer than
// the handshake timeout). The session must not stay promised to that dead
// connection: the client's next connection resumes it.
//
// Both ways a HELLO can find its session: waiting without a socket (the
// session is handed to the new connection), and still holding the old
// socket, which its client has left (the new connection waits for the old
// socket to be dropped).
func TestResumeAfterAGreetingThatDied(t *testing.T) {
	for _, tc := range []struct {
		name string
		// leave ends the first connection as its client leaves it: reset,
		// or left open and silent.
		leave func(*testing.T, *actors.Server, *tls.Conn)
	}{
		{"session waiting", func(t *testing.T, srv *actors.Server, c *tls.Conn) {
			reset(c)
			within(t, "the session waiting for its client", func() bool { return srv.Stats().SessionsWaiting == 1 })
		}},
		{"session holding the old socket", func(*testing.T, *actors.Server, *tls.Conn) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const handshake = time.Second
			blocked, release := make(chan struct{}), make(chan struct{})
			srv, certs := listeningServer(t, actors.ServerOptions{
				Limits: actors.Limits{HandshakeTimeout: handshake},
				OnToken: func(tok []byte, c *actors.Connection) {
					if string(tok) == "block" {
						close(blocked)
						<-release // the server actor is busy: no session decision meanwhile
					}
					c.Send(tok)
				},
			})
			addr := srv.Addr().String()
			id := wire.SessionID{7, 7}
			first := dialToken2(t, addr, certs.ClientCert, certs.ClientKey)
			defer first.Close()
			if w := greet(t, first, wire.Hello{Session: id, First: 1}); w.Status != wire.SessionNew {
				t.Fatalf("WELCOME %+v, want a new session", w)
			}
			echo(t, first, "one")
			tc.leave(t, srv, first)

			// Its TLS handshake done while the server actor is free (it
			// takes in new sockets), the doomed connection sends its HELLO
			// once the actor is busy, well within its handshake timeout.
			busy := dialToken2(t, addr, certs.ClientCert, certs.ClientKey)
			defer busy.Close()
			if w := greet(t, busy, wire.Hello{Session: wire.SessionID{8, 8}, First: 1}); w.Status != wire.SessionNew {
				t.Fatalf("WELCOME %+v, want a new session", w)
			}
			doomed := dialToken2(t, addr, certs.ClientCert, certs.ClientKey)
			defer doomed.Close()
			if _, err := busy.Write(wire.AppendData(nil, []byte("block"))); err != nil {
				t.Fatal(err)
			}
			select {
			case <-blocked:
			case <-time.After(deadline):
				t.Fatal("the callback did not run")
			}
			if _, err := doomed.Write(wire.AppendHello(nil, wire.Hello{Session: id, Recv: 1, First: 2, Last: 1})); err != nil {
				close(release)
				t.Fatal(err)
			}
			// No decision comes within the handshake timeout: the server
			// closes the doomed socket, without a WELCOME.
			_, err := wire.ReadWelcome(doomed)
			close(release)
			var ne net.Error
			if err == nil || errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the doomed connection's greeting ended with %v, want it closed by the server", err)
			}

			// The client comes back: its session resumes.
			back := dialToken2(t, addr, certs.ClientCert, certs.ClientKey)
			defer back.Close()
			if w := greet(t, back, wire.Hello{Session: id, Recv: 1, First: 2, Last: 1}); w.Status != wire.SessionResumed || w.Recv != 1 {
				t.Fatalf("WELCOME %+v, want the session resumed with 1 token received", w)
			}
			echo(t, back, "two")
			if st := srv.Stats(); st.SessionsResumed != 1 || st.SessionsWaiting != 0 {
				t.Errorf("SessionsResumed %d, SessionsWaiting %d; want 1 and 0", st.SessionsResumed, st.SessionsWaiting)
			}
		})
	}
}
