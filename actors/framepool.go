package actors

import (
	"math/bits"
	"sync"
)

// Frame buffers for Send: encoded frames live from Send until the writer has
// written them, and nobody else ever sees them, so the connection actor gives
// them back here once written and the next Send reuses warm memory instead of
// allocating. Buffers are kept in power-of-two classes from 4 KiB to 16 MiB;
// smaller frames are cheap to allocate and larger ones are rare.
const (
	minPooledShift = 12 // 4 KiB
	maxPooledShift = 24 // 16 MiB
)

var framePools [maxPooledShift - minPooledShift + 1]sync.Pool

// frameBuf returns an empty buffer with room for at least n bytes.
func frameBuf(n int) []byte {
	if n < 1<<minPooledShift || n > 1<<maxPooledShift {
		return make([]byte, 0, n)
	}
	shift := bits.Len(uint(n - 1)) // smallest power of two >= n
	if p, ok := framePools[shift-minPooledShift].Get().(*[]byte); ok {
		return (*p)[:0]
	}
	return make([]byte, 0, 1<<shift)
}

// releaseFrame gives a written frame buffer back, if it is of a pooled class.
func releaseFrame(b []byte) {
	c := cap(b)
	if c < 1<<minPooledShift || c > 1<<maxPooledShift || c&(c-1) != 0 {
		return
	}
	b = b[:0]
	framePools[bits.Len(uint(c))-1-minPooledShift].Put(&b)
}
