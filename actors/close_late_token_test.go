package actors

import (
	"errors"
	"io"
	"testing"
	"time"
)

// A connection closed with Close ends its side and then waits for the
// peer's end: a token the peer sends in between still reaches the handler,
// and the close is clean.
func TestTokenAfterCloseBeforePeerEnd(t *testing.T) {
	toks := make(chan string, 4)
	raw, conn, _, closes := rawClientOf(t, ServerOptions{OnToken: func(tok []byte, _ *Connection) { put(t, toks, string(tok)) }})
	conn.Close()
	_ = raw.SetReadDeadline(time.Now().Add(deadline))
	if n, err := raw.Read(make([]byte, 64)); !errors.Is(err, io.EOF) {
		t.Fatalf("read %d bytes, %v; want the server's end", n, err)
	}
	if _, err := raw.Write([]byte("late\n")); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, toks, "the late token"); got != "late" {
		t.Errorf("token %q, want %q", got, "late")
	}
	_ = raw.CloseWrite()
	if recv(t, closes, "the close") {
		t.Error("close with hadError")
	}
}
