package actors

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tokenserver/tokenserver/actors/internal/dispatch"
	"github.com/tokenserver/tokenserver/tlsio"
	"github.com/tokenserver/tokenserver/wire"
)

// A client's connection that goes on with a session writes the frames its
// last connection did not have acknowledged before any token Send takes
// once it is up. Its owner publishes it to Send when connUp comes (a
// client flushes its reconnect buffer into it at once, on the client
// actor's goroutine), so those frames must be queued before connUp. Here
// the owner runs inline: it takes connUp, and Sends "new", before the
// connection actor goes on, the interleaving a loaded machine gives now
// and then. A raw token/2 server must read "old 1", "old 2", then "new".
// (The frames were once queued after connUp and the sends taken with it:
// through a proxy that reset connections, a run of newer tokens reached
// the server's handler before older ones, TestResetsLoseNothing's rare
// failure.)
func TestResumedConnectionWritesItsResendFirst(t *testing.T) {
	cfg := serverTLS(t).Clone()
	cfg.NextProtos = []string{wire.ProtocolToken2}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	read := make(chan []string, 1)
	go func() {
		toks, err := readResent(ln, 3)
		if err != nil {
			t.Errorf("raw server: %v", err)
		}
		read <- toks
	}()

	sys := actor.NewActorSystem()
	defer sys.Shutdown()
	st := newSessionState()
	st.frames = wire.AppendData(wire.AppendData(nil, []byte("old 1")), []byte("old 2"))
	st.tokens, st.last = 2, 2 // written over the last connection, not acknowledged
	downs := make(chan connDown, 1)
	owner := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case sessionWanted:
			ctx.Send(m.c.PID(), sessionGiven{st})
		case connUp:
			if !m.c.Send([]byte("new")) {
				t.Error("Send refused a token once the connection was up")
			}
		case connFrames:
			ctx.Send(m.c.PID(), framesDone{m.frames})
		case connDown:
			put(t, downs, m)
		}
	}, actor.WithDispatcher(dispatch.Inline)))
	defer sys.Root.Stop(owner)
	limits, err := Limits{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	src, err := tlsio.NewClientSource(testCerts(t).ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	sys.Root.Spawn(dialingConnProps(sys, connConfig{
		limits: limits, owner: owner, log: slog.New(slog.DiscardHandler), sessions: &sessionConfig{},
		dial: &dialTarget{addr: ln.Addr().String(), src: src, protocols: []string{wire.ProtocolToken2}},
	}))

	toks, _ := awaitIn(t, read, "the raw server's tokens")
	if want := []string{"old 1", "old 2", "new"}; !slices.Equal(toks, want) {
		t.Errorf("the server read %q, want %q", toks, want)
	}
	awaitIn(t, downs, "the connection's end") // the server reset it
}

// readResent accepts one token/2 connection on ln, answers its HELLO (a
// session resumed, nothing received), reads n tokens and resets the
// connection.
func readResent(ln net.Listener, n int) ([]string, error) {
	c, err := ln.Accept()
	if err != nil {
		return nil, err
	}
	defer func() {
		_ = c.(*tls.Conn).NetConn().(*net.TCPConn).SetLinger(0)
		c.Close()
	}()
	_ = c.SetDeadline(time.Now().Add(deadline))
	h, err := wire.ReadHello(c)
	if err != nil {
		return nil, err
	}
	if h.First != 1 || h.Last != 2 {
		return nil, fmt.Errorf("HELLO first %d, last %d; want 1, 2", h.First, h.Last)
	}
	if _, err := c.Write(wire.AppendWelcome(nil, wire.Welcome{Status: wire.SessionResumed})); err != nil {
		return nil, err
	}
	return readToken2s(c, n)
}

// readToken2s reads n tokens of token/2 DATA frames from c (skipping the
// control frames); an end of stream before them is io.ErrUnexpectedEOF.
func readToken2s(c net.Conn, n int) ([]string, error) {
	dec, err := wire.NewToken2Decoder(1 << 10)
	if err != nil {
		return nil, err
	}
	var toks []string
	buf := make([]byte, 4<<10)
	for len(toks) < n {
		k, err := c.Read(buf)
		frames, derr := dec.AppendFrames(nil, buf[:k])
		for _, f := range frames {
			if f.Kind == wire.KindToken {
				toks = append(toks, string(f.Token))
			}
		}
		switch {
		case derr != nil:
			return toks, derr
		case errors.Is(err, io.EOF) && len(toks) < n:
			return toks, io.ErrUnexpectedEOF
		case err != nil && !errors.Is(err, io.EOF):
			return toks, err
		}
	}
	return toks, nil
}
