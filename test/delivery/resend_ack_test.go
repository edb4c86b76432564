package delivery

import (
	"fmt"
	"testing"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/wire"
)

// What a server sends again on resume is its data frames, whole: the ACKs
// that rode in the same writes are not kept with them. A raw client sends
// 201 tokens, reads their echoes and the server's ACKs (from 1, a varint of
// one byte, to 201, of two), acknowledges none of the echoes, and comes
// back over a new socket saying it received nothing: every echo comes
// again, in order, in frames a strict decoder reads. (The ACK that rode in
// a write is the session's one ACK buffer, written over by every later ACK:
// were it sent again, it would be cut to the length of the older, shorter
// ACK, and break the stream.)
func TestResendCarriesNoStaleAck(t *testing.T) {
	const n = 201
	addr, certs := listening(t, actors.ServerOptions{
		OnToken: func(tok []byte, c *actors.Connection) { c.Send(tok) },
	})
	id := wire.SessionID{4, 2}
	c := dialToken2(t, addr, certs.ClientCert, certs.ClientKey)
	if w := greet(t, c, wire.Hello{Session: id, First: 1}); w.Status != wire.SessionNew {
		t.Fatalf("WELCOME %+v, want a new session", w)
	}
	tok := func(i int) string { return fmt.Sprintf("token %d", i) }
	var req []byte
	if _, err := c.Write(wire.AppendData(req, []byte(tok(1)))); err != nil {
		t.Fatal(err)
	}
	d, _ := wire.NewToken2Decoder(1 << 20)
	buf := make([]byte, 4096)
	echoes, acked := 0, uint64(0)
	read := func(tokens int, ack uint64) {
		t.Helper()
		for echoes < tokens || acked < ack {
			k, err := c.Read(buf)
			if err != nil {
				t.Fatalf("after %d echoes and ACK %d: %v", echoes, acked, err)
			}
			frames, err := d.AppendFrames(nil, buf[:k])
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range frames {
				switch f.Kind {
				case wire.KindToken:
					echoes++
				case wire.KindAck:
					acked = f.Value
				}
			}
		}
	}
	read(1, 1)
	for i := 2; i <= n; i++ {
		req = wire.AppendData(req, []byte(tok(i)))
	}
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	read(n, n)
	reset(c)

	back := dialToken2(t, addr, certs.ClientCert, certs.ClientKey)
	defer back.Close()
	if w := greet(t, back, wire.Hello{Session: id, First: n + 1, Last: n}); w.Status != wire.SessionResumed || w.Recv != n {
		t.Fatalf("WELCOME %+v, want resumed with %d tokens received", w, n)
	}
	got, err := readData(back, n)
	if err != nil {
		t.Fatalf("the resend, after %d tokens: %v", len(got), err)
	}
	for i, g := range got {
		if g != tok(i+1) {
			t.Fatalf("resent token %d is %q, want %q", i+1, g, tok(i+1))
		}
	}
}
