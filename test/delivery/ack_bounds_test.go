package delivery

import (
	"strings"
	"testing"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/wire"
)

// An ACK may repeat the last one, but not name a frame never sent: that is
// a protocol error that says what was acknowledged and sent, on that
// connection only. A raw client reads the one token the server sent,
// acknowledges it twice, then acknowledges a second one.
func TestAckBounds(t *testing.T) {
	srv, certs, conns, errs := echoServer(t)
	c := dialToken2(t, srv.Addr().String(), certs.ClientCert, certs.ClientKey)
	defer c.Close()
	if w := greet(t, c, wire.Hello{Session: wire.SessionID{5}, First: 1}); w.Status != wire.SessionNew {
		t.Fatalf("WELCOME %+v, want a new session", w)
	}
	conn := nextConn(t, conns)
	if !conn.Send([]byte("one")) {
		t.Fatal("Send refused")
	}
	readTokens(t, c, 1)
	if _, err := c.Write(wire.AppendAck(wire.AppendAck(nil, 1), 1)); err != nil {
		t.Fatal(err)
	}
	within(t, "the ACK taken", func() bool { return conn.Queued() == 0 })
	echo(t, c, "the same ACK twice is no error")
	// Both ACKs counted; the server acknowledged the echoed token.
	within(t, "the server's ACK counted", func() bool { return srv.Stats().AcksSent >= 1 })
	if st := srv.Stats(); st.AcksReceived != 2 {
		t.Errorf("AcksReceived %d, want 2", st.AcksReceived)
	}

	if _, err := c.Write(wire.AppendAck(nil, 3)); err != nil { // the echo was 2
		t.Fatal(err)
	}
	err := errorEvent(t, errs, actors.ErrProtocol, "an ACK of a frame never sent")
	if !strings.Contains(err.Error(), "ACK 3: acknowledged 1 before, 2 sent") {
		t.Fatalf("error event %v, want it to say ACK 3: acknowledged 1 before, 2 sent", err)
	}
	if n := strings.Count(err.Error(), "protocol error"); n != 1 {
		t.Errorf("error event %q says protocol error %d times", err, n)
	}
	within(t, "the connection dead", conn.IsDead)
}
