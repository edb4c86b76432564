package delivery

import (
	"errors"
	"io"
	"net"
	"testing"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/wire"
)

// A client whose socket the server still holds open (a half-dead NAT entry:
// the old socket neither reads nor ends) resumes over a new one: the server
// drops the old socket, so that its reader, blocked on a peer that sends
// nothing, ends, and the session goes on over the new socket at once (and
// is not counted as waiting for its client).
func TestNewSocketSupersedesTheOpenOne(t *testing.T) {
	srv, certs := listeningServer(t, actors.ServerOptions{
		OnToken: func(tok []byte, c *actors.Connection) { c.Send(tok) },
	})
	addr := srv.Addr().String()
	id := wire.SessionID{9, 9}
	old := dialToken2(t, addr, certs.ClientCert, certs.ClientKey)
	defer old.Close()
	if w := greet(t, old, wire.Hello{Session: id, First: 1}); w.Status != wire.SessionNew {
		t.Fatalf("WELCOME %+v, want a new session", w)
	}
	echo(t, old, "one")

	// The same client again, the old socket still open and silent.
	back := dialToken2(t, addr, certs.ClientCert, certs.ClientKey)
	defer back.Close()
	if w := greet(t, back, wire.Hello{Session: id, Recv: 1, First: 2, Last: 1}); w.Status != wire.SessionResumed || w.Recv != 1 {
		t.Fatalf("WELCOME %+v, want resumed with 1 token received", w)
	}
	echo(t, back, "two")
	if st := srv.Stats(); st.SessionsResumed != 1 || st.SessionsWaiting != 0 {
		t.Errorf("SessionsResumed %d, SessionsWaiting %d; want 1 and 0: the session is open", st.SessionsResumed, st.SessionsWaiting)
	}

	// The old socket was dropped by the server: its end, not our deadline.
	buf := make([]byte, 4096)
	for {
		_, err := old.Read(buf)
		if err == nil {
			continue // the ACK of "one", if it had not been read
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the old socket is still open: %v", err)
		}
		if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
			t.Logf("the old socket ended with %v", err)
		}
		return
	}
}
