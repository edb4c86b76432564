package delivery

import (
	"slices"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
	"github.com/tokenserver/tokenserver/wire"
)

// A client that received the first token of a batch the server wrote, and
// not the second, resumes its session: the server writes again only the
// second, numbered as before, and once the client acknowledges it the
// server's queue is empty (the batch's bytes counted once, not twice).
func TestResumeWithinABatch(t *testing.T) {
	certs, err := tlsio.GenerateDevCerts()
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan *actors.Connection, 2)
	srv, err := actors.NewServer(actors.ServerOptions{
		Host: "127.0.0.1", TLS: certs.ServerOptions(),
		OnConnection: func(c *actors.Connection) { conns <- c },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, "server", srv.Shutdown)
	within(t, "the server listening", func() bool { return srv.Addr() != nil })
	addr := srv.Addr().String()
	id := wire.SessionID{3, 1, 4}

	first := dialToken2(t, addr, certs.ClientCert, certs.ClientKey)
	if w := greet(t, first, wire.Hello{Session: id, First: 1}); w.Status != wire.SessionNew {
		t.Fatalf("WELCOME %+v, want a new session", w)
	}
	var conn *actors.Connection
	select {
	case conn = <-conns:
	case <-time.After(deadline):
		t.Fatal("no connection event")
	}
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
