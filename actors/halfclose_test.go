package actors

import (
	"net"
	"testing"
	"time"
)

// A connection over a net.Conn that cannot half-close (net.Pipe, or a user's
// net.Conn without CloseWrite) closes at once once its queue is flushed, so
// the peer sees its close without waiting for CloseTimeout (issue 12: both
// sides waited the whole 5 s). CloseTimeout is 5 s here and the closes must
// come within 1 s: a generous bound, not a measure of speed.

// noHalfClose hides the CloseWrite of the net.Conn it wraps.
type noHalfClose struct{ net.Conn }

// closeEnds connects two standalone connections over a and b, sends a token
// from a, closes a, and checks that b gets the token, then both close
// cleanly within a second.
func closeEnds(t *testing.T, a, b net.Conn) {
	t.Helper()
	const closeTimeout = 5 * time.Second
	type closed struct {
		side string
		had  bool
		at   time.Time
	}
	closes := make(chan closed, 2)
	tokens := make(chan string, 1)
	limits := Limits{CloseTimeout: closeTimeout}
	ca, err := NewConnection(a, ConnectionOptions{
		Limits:  limits,
		OnError: func(err error) { t.Errorf("closing side: %v", err) },
		OnClose: func(had bool) { put(t, closes, closed{"closing side", had, time.Now()}) },
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewConnection(b, ConnectionOptions{
		Limits:  limits,
		OnToken: func(tok []byte, _ *Connection) { put(t, tokens, string(tok)) },
		OnError: func(err error) { t.Errorf("peer: %v", err) },
		OnClose: func(had bool) { put(t, closes, closed{"peer", had, time.Now()}) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if !ca.Send([]byte("last words")) {
		t.Fatal("Send returned false")
	}
	asked := time.Now()
	if !ca.Close() {
		t.Fatal("Close returned false")
	}
	if tok := recv(t, tokens, "the token sent before Close"); tok != "last words" {
		t.Errorf("peer got %q", tok)
	}
	for i := 0; i < 2; i++ {
		c := recv(t, closes, "both closes")
		if took := c.at.Sub(asked); took > time.Second {
			t.Errorf("%s closed %v after Close (CloseTimeout %v): it waited for a half-close that cannot come", c.side, took, closeTimeout)
		}
		if c.had {
			t.Errorf("%s closed with an error", c.side)
		}
	}
}

func TestPipeCloseIsPrompt(t *testing.T) {
	a, b := net.Pipe()
	closeEnds(t, a, b)
}

// A TCP connection whose closing side's net.Conn has no CloseWrite.
func TestConnWithoutCloseWriteClosesPrompt(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c
		}
	}()
	a, err := net.DialTimeout("tcp", ln.Addr().String(), deadline)
	if err != nil {
		t.Fatal(err)
	}
	b := recv(t, accepted, "the accepted connection")
	closeEnds(t, noHalfClose{a}, b)
}
