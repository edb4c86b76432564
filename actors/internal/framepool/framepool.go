// Package framepool keeps the buffers that encoded frames live in, from
// Send until the write pump has written them. Nobody else ever sees them, so
// the connection actor gives them back here once written and the next Send
// reuses warm memory instead of allocating. Buffers are kept in size classes
// from 4 KiB to 16 MiB, four per doubling (5/8, 6/8, 7/8 and 8/8 of a power
// of two), so that a buffer is at most a quarter larger than what it was
// asked for: the outbound queue counts frame bytes, and a frame of a 64 KiB
// token must not hold 128 KiB while it waits (with power-of-two classes,
// memory was up to twice the queue). Smaller frames are cheap to allocate
// and larger ones are rare.
package framepool

import (
	"math/bits"
	"sync"
)

const (
	minPooledShift = 12 // 4 KiB
	maxPooledShift = 24 // 16 MiB
	classSteps     = 4  // size classes per doubling
)

var framePools [(maxPooledShift - minPooledShift + 1) * classSteps]sync.Pool

// frameClass returns the pool index and the buffer size of the smallest
// class that holds n bytes, or ok false when n is not pooled.
func frameClass(n int) (index, size int, ok bool) {
	if n < 1<<minPooledShift || n > 1<<maxPooledShift {
		return 0, 0, false
	}
	shift := bits.Len(uint(n - 1)) // 1<<(shift-1) < n <= 1<<shift
	base := 1 << (shift - 1)
	step := base / classSteps
	j := (n - base + step - 1) / step // 1..classSteps
	return (shift-minPooledShift)*classSteps + j - 1, base + j*step, true
}

// Get returns an empty buffer with room for at least n bytes.
func Get(n int) []byte {
	i, size, ok := frameClass(n)
	if !ok {
		return make([]byte, 0, n)
	}
	if p, ok := framePools[i].Get().(*[]byte); ok {
		return (*p)[:0]
	}
	return make([]byte, 0, size)
}

// Put gives a buffer back, if it is of a pooled class. The caller must not
// use it, nor anything that refers to it, afterwards.
func Put(b []byte) {
	i, size, ok := frameClass(cap(b))
	if !ok || size != cap(b) {
		return
	}
	b = b[:0]
	framePools[i].Put(&b)
}
