package delivery

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
	"github.com/tokenserver/tokenserver/wire"
)

// A token/2 client without reconnection whose connection is reset reports
// what its server never acknowledged apart: the tokens it wrote, or was
// writing, maybe sent (ErrMaybeSent), then the one it never wrote
// (ErrNotSent), in order. A raw token/2 server reads the first token and
// the first bytes of a large one, then reads no more, so that the last
// token waits behind the stalled write, and resets the connection.
func TestClientGivingUpReportsMaybeSentThenNotSent(t *testing.T) {
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
	defer ln.Close()
	accepted := make(chan *tls.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		accepted <- c.(*tls.Conn)
	}()

	type drop struct {
		toks   []string
		reason error
	}
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
	defer shutdown(t, "client", cli.Shutdown)

	var srv *tls.Conn
	select {
	case srv = <-accepted:
	case <-time.After(deadline):
		t.Fatal("no connection")
	}
	defer srv.Close()
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
	if !cli.Send([]byte("first")) {
		t.Fatal("Send refused the first token")
	}
	if toks, err := readData(srv, 1); err != nil || toks[0] != "first" {
		t.Fatalf("read %q, %v; want the first token", toks, err)
	}
	large := append([]byte("large..."), bytes.Repeat([]byte{'x'}, 12<<20)...)
	if !cli.Send(large) {
		t.Fatal("Send refused the large token")
	}
	// Its first bytes came: the writer has it.
	if _, err := io.ReadFull(srv, make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	if !cli.Send([]byte("last")) {
		t.Fatal("Send refused the last token")
	}
	within(t, "the last token queued", func() bool { c := cli.Connection(); return c != nil && c.Queued() > len(large) })
	reset(srv)

	want := []drop{{[]string{"first", "large..."}, actors.ErrMaybeSent}, {[]string{"last"}, actors.ErrNotSent}}
	for _, w := range want {
		select {
		case d := <-drops:
			if len(d.toks) != len(w.toks) || d.toks[0] != w.toks[0] || d.toks[len(d.toks)-1] != w.toks[len(w.toks)-1] || !errors.Is(d.reason, w.reason) {
				t.Fatalf("dropped %q with %v, want %q with %v", d.toks, d.reason, w.toks, w.reason)
			}
		case <-time.After(deadline):
			t.Fatalf("no drop report of %q", w.toks)
		}
	}
}
