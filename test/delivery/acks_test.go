package delivery

import (
	"fmt"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
	"github.com/tokenserver/tokenserver/wire"
)

// The server acknowledges every token its handler took, on round trips as
// on a burst its handler answers nothing to: ACKs ride with its replies,
// and what no reply carried comes alone once the connection is quiet (the
// ack timer, which runs on while writes carry ACKs rather than being
// restarted per token: a token taken while it runs must still be
// acknowledged when it fires). Each round ends with the peer writing
// nothing more until it has read the ACK of every token it sent, so a
// lost ACK fails the round.
func TestEveryTakenTokenIsAcknowledged(t *testing.T) {
	certs, err := tlsio.GenerateDevCerts()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := actors.NewServer(actors.ServerOptions{
		Host: "127.0.0.1", TLS: certs.ServerOptions(),
		OnToken: func(tok []byte, c *actors.Connection) {
			if tok[0] == 'e' { // "s...": silence
				c.Send(tok)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, "server", srv.Shutdown)
	within(t, "the server listening", func() bool { return srv.Addr() != nil })

	c := dialToken2(t, srv.Addr().String(), certs.ClientCert, certs.ClientKey)
	defer c.Close()
	if w := greet(t, c, wire.Hello{Session: wire.SessionID{9}, First: 1}); w.Status != wire.SessionNew {
		t.Fatalf("WELCOME %+v, want a new session", w)
	}
	d, _ := wire.NewToken2Decoder(1 << 20)
	buf := make([]byte, 64<<10)
	var acked, echoed uint64
	// read reads until the server has echoed wantEcho tokens and
	// acknowledged wantAck, checking that ACKs only grow and never pass
	// what was sent.
	read := func(sent, wantEcho, wantAck uint64) {
		t.Helper()
		for echoed < wantEcho || acked < wantAck {
			n, err := c.Read(buf)
			if err != nil {
				t.Fatalf("sent %d: echoed %d, acknowledged %d, waiting for %d and %d: %v", sent, echoed, acked, wantEcho, wantAck, err)
			}
			frames, err := d.AppendFrames(nil, buf[:n])
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range frames {
				switch f.Kind {
				case wire.KindToken:
					echoed++
					if want := fmt.Sprint("e", echoed); string(f.Token) != want {
						t.Fatalf("echo %q, want %q", f.Token, want)
					}
				case wire.KindAck:
					if f.Value < acked || f.Value > sent {
						t.Fatalf("ACK %d after %d with %d sent", f.Value, acked, sent)
					}
					acked = f.Value
				default:
					t.Fatalf("unexpected frame %v", f.Kind)
				}
			}
		}
	}
	var sent uint64
	echoes := uint64(0) // tokens sent that the server answers
	for round := range 5 {
		// Round trips: each token's echo is read before the next is sent.
		for range 20 {
			sent++
			echoes++
			if _, err := c.Write(wire.AppendData(nil, []byte(fmt.Sprint("e", echoes)))); err != nil {
				t.Fatal(err)
			}
			read(sent, echoes, 0)
		}
		// A burst of tokens the handler answers nothing to: fewer than the
		// 256 that are acknowledged at once, then more.
		var b []byte
		for range 50 + 250*(round%2) {
			sent++
			b = wire.AppendData(b, []byte(fmt.Sprint("s", sent)))
		}
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
		// Then quiet: everything acknowledged, with no write of ours nor
		// any reply to carry the last ACK.
		_ = c.SetReadDeadline(time.Now().Add(deadline / 3))
		read(sent, echoes, sent)
		t.Logf("round %d: %d tokens acknowledged, %d of them echoed", round, sent, echoes)
	}
	// The client acknowledges the echoes it read; the server then holds
	// nothing for it.
	if _, err := c.Write(wire.AppendAck(nil, echoed)); err != nil {
		t.Fatal(err)
	}
	within(t, "the server's queue empty once its echoes are acknowledged", func() bool {
		conns := srv.Connections()
		return len(conns) == 1 && conns[0].Queued() == 0
	})
}
