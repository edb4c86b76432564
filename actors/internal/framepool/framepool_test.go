package framepool

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Every pooled frame buffer is at most a quarter larger than asked for (the
// queue counts frame bytes; memory must follow it), and a buffer of a
// class's size goes back to that class.
func TestFrameClassesWasteAtMostAQuarter(t *testing.T) {
	for n := 1 << minPooledShift; n <= 1<<maxPooledShift; n += 97 {
		i, size, ok := frameClass(n)
		if !ok || size < n || 4*size > 5*n {
			t.Fatalf("frameClass(%d) = %d, %d, %v: want a size in [n, 5n/4]", n, i, size, ok)
		}
		if j, s, ok := frameClass(size); !ok || j != i || s != size {
			t.Fatalf("frameClass(%d) = %d, %d, %v: want class %d again", size, j, s, ok, i)
		}
	}
	for _, n := range []int{0, 1, 1<<minPooledShift - 1, 1<<maxPooledShift + 1} {
		if _, _, ok := frameClass(n); ok {
			t.Errorf("frameClass(%d) pooled, want not", n)
		}
	}
	// 64 KiB tokens, the common large size: their frames no longer take 128 KiB.
	b := Get(64<<10 + 64<<10/8 + 1)
	if cap(b) > 80<<10 {
		t.Errorf("a 64 KiB token's frame buffer has %d bytes", cap(b))
	}
	Put(b)
}
