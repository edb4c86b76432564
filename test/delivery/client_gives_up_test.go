package delivery

import (
	"crypto/tls"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
	"github.com/tokenserver/tokenserver/wire"
)

// A token/2 client without reconnection whose connection is reset reports
// what its server never acknowledged apart: the tokens it wrote, or was
// writing, maybe sent (ErrMaybeSent), then those it never wrote
// (ErrNotSent), in order, and no empty report.
func TestClientGivingUpReportsMaybeSentThenNotSent(t *testing.T) {
	t.Run("one behind the write", func(t *testing.T) {
		// The raw server reads the first bytes of a large token, then no
		// more: the last token waits behind the stalled write.
		cli, srv, drops := givingUpClient(t)
		large := stallBehind(t, cli.Send, srv, "last")
		within(t, "the last token queued", func() bool { c := cli.Connection(); return c != nil && c.Queued() > len(large) })
		reset(srv)
		expectDrops(t, drops, drop{[]string{"large..."}, actors.ErrMaybeSent}, drop{[]string{"last"}, actors.ErrNotSent})
	})
	t.Run("all written", func(t *testing.T) {
		cli, srv, drops := givingUpClient(t)
		for _, tok := range []string{"one", "two"} {
			if !cli.Send([]byte(tok)) {
				t.Fatalf("Send refused %q", tok)
			}
		}
		if toks, err := readData(srv, 2); err != nil {
			t.Fatalf("read %q, %v", toks, err)
		}
		reset(srv)
		expectDrops(t, drops, drop{[]string{"one", "two"}, actors.ErrMaybeSent})
	})
}

// drop is one OnDropped report, its tokens cut to 8 bytes.
type drop struct {
	toks   []string
	reason error
}

// givingUpClient starts a raw token/2 server that reads little (it opens
// a new session, then reads what the test reads) and a client without
// reconnection connected to it; it returns the client, the server's side
// and the client's drop reports.
func givingUpClient(t *testing.T) (*actors.Client, *tls.Conn, <-chan drop) {
	t.Helper()
	certs, err := tlsio.GenerateDevCerts()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := tlsio.ServerConfig(certs.ServerOptions())
	if err != nil {
		t.Fatal(err)
	}
	cfg.NextProtos = []string{wire.ProtocolToken2}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan *tls.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		accepted <- c.(*tls.Conn)
	}()
	drops, up := make(chan drop, 4), make(chan struct{}, 1)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	cli, err := actors.NewClient(actors.ClientOptions{
		Host: "127.0.0.1", Port: atoi(t, port), TLS: certs.ClientOptions(),
		OnConnect: func() { up <- struct{}{} },
		OnDropped: func(toks [][]byte, r error) {
			d := drop{reason: r}
			for _, t := range toks {
				d.toks = append(d.toks, string(t[:min(len(t), 8)]))
			}
			drops <- d
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, "client", cli.Shutdown) })
	var srv *tls.Conn
	select {
	case srv = <-accepted:
	case <-time.After(deadline):
		t.Fatal("no connection")
	}
	t.Cleanup(func() { srv.Close() })
	_ = srv.SetDeadline(time.Now().Add(deadline))
	if err := srv.NetConn().(*net.TCPConn).SetReadBuffer(64 << 10); err != nil {
		t.Fatal(err)
	}
	if _, err := wire.ReadHello(srv); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Write(wire.AppendWelcome(nil, wire.Welcome{Status: wire.SessionNew})); err != nil {
		t.Fatal(err)
	}
	select {
	case <-up:
	case <-time.After(deadline):
		t.Fatal("the client did not connect")
	}
	return cli, srv, drops
}

// expectDrops checks that the reports come as want, in order, and then no
// other within a short while (an empty one, say).
func expectDrops(t *testing.T, drops <-chan drop, want ...drop) {
	t.Helper()
	for _, w := range want {
		select {
		case d := <-drops:
			if !slices.Equal(d.toks, w.toks) || !errors.Is(d.reason, w.reason) {
				t.Fatalf("dropped %q with %v, want %q with %v", d.toks, d.reason, w.toks, w.reason)
			}
		case <-time.After(deadline):
			t.Fatalf("no drop report of %q", w.toks)
		}
	}
	select {
	case d := <-drops:
		t.Fatalf("dropped %q with %v after the reports expected", d.toks, d.reason)
	case <-time.After(200 * time.Millisecond): // bounded wait for a non-event
	}
}
