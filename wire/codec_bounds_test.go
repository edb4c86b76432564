package wire

import (
	"bytes"
	"testing"
)

// FrameSizeHint is a likely size for a token's frame: token/1's holds a
// token without escapes and never passes the worst case (every byte
// escaped, and the newline); token/2's is exact.
func TestFrameSizeHintBounds(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 100, 64 << 10, 1 << 20} {
		plain := bytes.Repeat([]byte{'p'}, n)
		if h := Token1.FrameSizeHint(n); h < len(AppendToken(nil, plain)) || h > 2*n+1 {
			t.Errorf("token/1: FrameSizeHint(%d) = %d, want between %d and %d", n, h, n+1, 2*n+1)
		}
		if h, want := Token2.FrameSizeHint(n), len(AppendData(nil, plain)); h != want {
			t.Errorf("token/2: FrameSizeHint(%d) = %d, want %d", n, h, want)
		}
	}
}
