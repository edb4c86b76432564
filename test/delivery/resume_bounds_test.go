package delivery

import (
	"testing"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/wire"
)

// A resuming HELLO must fit the session: a client may say it received
// everything the server sent and it acknowledged (resumed), but not a frame
// the server never sent (a protocol error on that connection, the server
// going on).
func TestResumeHelloBounds(t *testing.T) {
	srv, certs, conns, errs := echoServer(t)
	addr := srv.Addr().String()
	open := func(id wire.SessionID) *actors.Connection {
		c := dialToken2(t, addr, certs.ClientCert, certs.ClientKey)
		if w := greet(t, c, wire.Hello{Session: id, First: 1}); w.Status != wire.SessionNew {
			t.Fatalf("WELCOME %+v, want a new session", w)
		}
		conn := nextConn(t, conns)
		if !conn.Send([]byte("one")) {
			t.Fatal("Send refused")
		}
		readTokens(t, c, 1)
		if _, err := c.Write(wire.AppendAck(nil, 1)); err != nil {
			t.Fatal(err)
		}
		within(t, "the ACK taken", func() bool { return conn.Queued() == 0 })
		reset(c)
		return conn
	}

	// Received and acknowledged all the server sent: resumed.
	open(wire.SessionID{1})
	back := dialToken2(t, addr, certs.ClientCert, certs.ClientKey)
	defer back.Close()
	if w := greet(t, back, wire.Hello{Session: wire.SessionID{1}, Recv: 1, First: 1}); w.Status != wire.SessionResumed || w.Recv != 0 {
		t.Fatalf("WELCOME %+v, want resumed, nothing received", w)
	}

	// Says it received a second frame, never sent: refused.
	conn := open(wire.SessionID{2})
	liar := dialToken2(t, addr, certs.ClientCert, certs.ClientKey)
	defer liar.Close()
	if _, err := liar.Write(wire.AppendHello(nil, wire.Hello{Session: wire.SessionID{2}, Recv: 2, First: 1})); err != nil {
		t.Fatal(err)
	}
	errorEvent(t, errs, actors.ErrProtocol, "a HELLO that does not fit")
	within(t, "the session's connection dead", conn.IsDead)
	echo(t, back, "the first session goes on")
}
