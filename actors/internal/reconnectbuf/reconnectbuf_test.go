package reconnectbuf

import (
	"fmt"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The reconnect buffer: a run handed back goes in front as one piece, in its
// order; a flush stops at the first refusal and keeps the rest in order.
func TestReconnectBufferKeepsOrder(t *testing.T) {
	tok := func(s string) []byte { return []byte(s) }
	var b Buffer
	b.Push(tok("d"))
	b.Push(tok("e"))
	b.GiveBack([][]byte{tok("a"), tok("b"), tok("c")})
	b.Push(tok("f"))
	if b.bytes != 6 {
		t.Errorf("bytes = %d, want 6", b.bytes)
	}
	var sent []string
	n, empty := b.Flush(func(t []byte) bool {
		if string(t) == "c" {
			return false // the connection died at c
		}
		sent = append(sent, string(t))
		return true
	})
	if fmt.Sprint(sent) != "[a b]" || n != 2 || empty {
		t.Fatalf("flush sent %v (%d bytes, empty %v), want [a b] (2 bytes, not empty)", sent, n, empty)
	}
	b.GiveBack([][]byte{tok("a2"), tok("b2")}) // what the dead connection did not write
	sent = nil
	n, empty = b.Flush(func(t []byte) bool { sent = append(sent, string(t)); return true })
	if fmt.Sprint(sent) != "[a2 b2 c d e f]" || n != 8 || !empty || b.bytes != 0 {
		t.Fatalf("flush sent %v (%d bytes, empty %v, %d left), want [a2 b2 c d e f] (8 bytes, empty, 0 left)",
			sent, n, empty, b.bytes)
	}
}
