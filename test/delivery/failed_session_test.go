package delivery

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/wire"
)

// A token/2 server connection that fails on bad input ends its session
// (nothing resumes it), and reports what its client never acknowledged
// apart: the token it was writing, maybe sent (ErrMaybeSent), then the
// token it never wrote (ErrNotSent), in order. (Reported as one with a
// single reason, those that were never written would look maybe sent.)
func TestFailedSessionReportsMaybeSentThenNotSent(t *testing.T) {
	type drop struct {
		toks   []string
		reason error
	}
	conns := make(chan *actors.Connection, 1)
	errs, drops := make(chan error, 4), make(chan drop, 4)
	addr, certs := listening(t, actors.ServerOptions{
		// The CLOSE frame that tells the client why waits for the stalled
		// write, up to WriteTimeout.
		Limits:            actors.Limits{WriteTimeout: time.Second},
		OnConnection:      func(c *actors.Connection) { conns <- c },
		OnConnectionError: func(_ *actors.Connection, err error) { errs <- err },
		OnDropped: func(_ *actors.Connection, toks [][]byte, r error) {
			d := drop{reason: r}
			for _, t := range toks {
				d.toks = append(d.toks, string(t[:min(len(t), 8)]))
			}
			drops <- d
		},
	})

	// A raw token/2 client that reads little: the server's write of a large
	// token stalls.
	c := dialToken2(t, addr, certs.ClientCert, certs.ClientKey)
	defer c.Close()
	if err := c.NetConn().(*net.TCPConn).SetReadBuffer(64 << 10); err != nil {
		t.Fatal(err)
	}
	greet(t, c, wire.Hello{Session: wire.SessionID{7}, First: 1})
	conn := nextConn(t, conns)
	large := stallBehind(t, conn.Send, c, "small")
	within(t, "the small token queued", func() bool { return conn.Queued() > len(large) })
	if _, err := c.Write([]byte{0xff, 0}); err != nil { // no such frame type
		t.Fatal(err)
	}
	errorEvent(t, errs, actors.ErrProtocol, "the bad frame")
	want := []drop{{[]string{"large..."}, actors.ErrMaybeSent}, {[]string{"small"}, actors.ErrNotSent}}
	for _, w := range want {
		select {
		case d := <-drops:
			if len(d.toks) != len(w.toks) || d.toks[0] != w.toks[0] || !errors.Is(d.reason, w.reason) {
				t.Fatalf("dropped %q with %v, want %q with %v", d.toks, d.reason, w.toks, w.reason)
			}
		case <-time.After(deadline):
			t.Fatalf("no report of %q", w.toks)
		}
	}
}
