package actors

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strconv"
	"testing"

	"github.com/tokenserver/tokenserver/wire"
)

// denseToken is a token whose every other byte needs escaping: the server
// decodes its frame with the byte loop for dense input (wire's
// unescapeDense).
func denseToken(n int) []byte {
	tok := make([]byte, n)
	for i := range tok {
		tok[i] = "a\n\\b"[i%4]
	}
	return tok
}

// A dense frame with an invalid escape deep inside is an error on its own
// connection, at its offset, after the reply to the valid dense token
// before it; another client's dense round trips go on, before and after.
func TestInvalidEscapeInDenseInput(t *testing.T) {
	errs := make(chan error, 2)
	srv := listeningServer(t, ServerOptions{
		OnToken:           func(tok []byte, c *Connection) { c.Send(tok) },
		OnConnectionError: func(_ *Connection, err error) { put(t, errs, err) },
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(serverPort(srv)))
	dial := func() *tls.Conn {
		conf := clientTLS(t)
		conf.NextProtos = []string{wire.ProtocolToken1}
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: deadline}, "tcp", addr, conf)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	good, bad := dial(), dial()
	tok := denseToken(3000)
	frame := wire.AppendToken(nil, tok)
	roundTrip := func(what string) {
		t.Helper()
		if _, err := good.Write(frame); err != nil {
			t.Fatal(what, err)
		}
		got := make([]byte, len(frame))
		if _, err := io.ReadFull(good, got); err != nil || !bytes.Equal(got, frame) {
			t.Fatalf("%s: the other client's echo %v, or not its frame", what, err)
		}
	}
	roundTrip("before")

	broken := wire.AppendToken(nil, tok)
	at := len(broken) / 2
	for broken[at] != '\\' { // the start of an escape pair, made invalid
		at++
	}
	broken[at+1] = 'x'
	if _, err := bad.Write(append(append([]byte{}, frame...), broken...)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(frame))
	if _, err := io.ReadFull(bad, got); err != nil || !bytes.Equal(got, frame) {
		t.Fatalf("the reply to the valid token before the bad one: %v", err)
	}
	err := recv(t, errs, "the error")
	var ie *wire.InvalidEscapeError
	if !errors.As(err, &ie) || ie.Offset != int64(len(frame)+at+1) || ie.Byte != 'x' {
		t.Fatalf("error %v, want an invalid escape 'x' at offset %d", err, len(frame)+at+1)
	}
	if _, err := io.ReadAll(bad); err != nil && !errors.Is(err, io.EOF) {
		t.Logf("the bad connection ended with %v", err) // closed by the server either way
	}
	roundTrip("after")
}
