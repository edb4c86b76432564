package delivery

import (
	"slices"
	"testing"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/wire"
)

// A client that received the first token of a batch the server wrote, and
// not the second, resumes its session: the server writes again only the
// second, numbered as before, and once the client acknowledges it the
// server's queue is empty (the batch's bytes counted once, not twice).
func TestResumeWithinABatch(t *testing.T) {
	conns := make(chan *actors.Connection, 2)
	addr, certs := listening(t, actors.ServerOptions{
		OnConnection: func(c *actors.Connection) { conns <- c },
	})
	id := wire.SessionID{3, 1, 4}

	first := dialToken2(t, addr, certs.ClientCert, certs.ClientKey)
	if w := greet(t, first, wire.Hello{Session: id, First: 1}); w.Status != wire.SessionNew {
		t.Fatalf("WELCOME %+v, want a new session", w)
	}
	conn := nextConn(t, conns)
	if !conn.SendBatch([][]byte{[]byte("one"), []byte("two")}) {
		t.Fatal("SendBatch refused")
	}
	if toks, err := readData(first, 2); err != nil || !slices.Equal(toks, []string{"one", "two"}) {
		t.Fatalf("read %q, %v; want one and two", toks, err)
	}
	reset(first) // acknowledging neither

	// Back, saying it received the first only.
	back := dialToken2(t, addr, certs.ClientCert, certs.ClientKey)
	defer back.Close()
	if w := greet(t, back, wire.Hello{Session: id, Recv: 1, First: 1}); w.Status != wire.SessionResumed {
		t.Fatalf("WELCOME %+v, want the session resumed", w)
	}
	got, err := readData(back, 1) // with whatever else came in the same read
	if err != nil {
		t.Fatalf("reading what is written again: %v", err)
	}
	if !slices.Equal(got, []string{"two"}) {
		t.Fatalf("written again %q, want only two", got)
	}
	if _, err := back.Write(wire.AppendAck(nil, 2)); err != nil {
		t.Fatal(err)
	}
	within(t, "the queue empty once both are acknowledged", func() bool { return conn.Queued() == 0 })
}
