package delivery

import (
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
	"github.com/tokenserver/tokenserver/wire"
)

// A client whose HELLO says it wrote frames before, to a server that does
// not know its session (one that restarted): the server flags those frames
// redelivered, to OnRedelivered, and counts them in Stats; the frames after
// them go to OnToken. Here the chunk the server reads starts with the one
// frame written before, the boundary of that count.
func TestRedeliveredFramesCounted(t *testing.T) {
	certs, err := tlsio.GenerateDevCerts()
	if err != nil {
		t.Fatal(err)
	}
	type delivery struct {
		tok         string
		redelivered bool
	}
	got := make(chan delivery, 8)
	srv, err := actors.NewServer(actors.ServerOptions{
		Host: "127.0.0.1", TLS: certs.ServerOptions(),
		OnToken:       func(tok []byte, _ *actors.Connection) { got <- delivery{string(tok), false} },
		OnRedelivered: func(tok []byte, _ *actors.Connection) { got <- delivery{string(tok), true} },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, "server", srv.Shutdown)
	within(t, "the server listening", func() bool { return srv.Addr() != nil })

	c := dialToken2(t, srv.Addr().String(), certs.ClientCert, certs.ClientKey)
	defer c.Close()
	if w := greet(t, c, wire.Hello{Session: wire.SessionID{5}, First: 1, Last: 1}); w.Status != wire.SessionNew {
		t.Fatalf("WELCOME status %v, want a new session", w.Status)
	}
	var frames []byte
	for _, tok := range []string{"one", "two", "three"} {
		frames = wire.AppendData(frames, []byte(tok))
	}
	if _, err := c.Write(frames); err != nil { // one write: one chunk, as a rule
		t.Fatal(err)
	}
	want := []delivery{{"one", true}, {"two", false}, {"three", false}}
	for _, w := range want {
		select {
		case d := <-got:
			if d != w {
				t.Fatalf("delivered %+v, want %+v", d, w)
			}
		case <-time.After(deadline):
			t.Fatalf("no delivery of %q", w.tok)
		}
	}
	if n := srv.Stats().TokensRedelivered; n != 1 {
		t.Errorf("Stats().TokensRedelivered %d, want 1", n)
	}
}
