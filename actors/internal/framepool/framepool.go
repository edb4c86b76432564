// Package framepool keeps the buffers that encoded frames live in, from
// Send until the write pump has written them. Nobody else ever sees them, so
// the connection actor gives them back here once written and the next Send
// reuses warm memory instead of allocating. Buffers are kept in size classes
// from 1 KiB to 16 MiB, four per doubling (5/8, 6/8, 7/8 and 8/8 of a power
// of two), so that a buffer is at most a quarter larger than what it was
// asked for: the outbound queue counts frame bytes, and a frame of a 64 KiB
// token must not hold 128 KiB while it waits (with power-of-two classes,
// memory was up to twice the queue). Smaller frames are cheap to allocate
// and larger ones are rare.
//
// Each class keeps a bounded free list, which survives garbage collection:
// a sync.Pool empties every second collection, and on bulk loads, at tens
// of collections a second, most frames were allocated anew. The free lists
// hold at most maxHeld bytes (8 MiB) in all, and each at most perClass
// bytes (4 MiB) and maxPerClass buffers (but minPerClass buffers of the
// largest classes); what they have no room for goes to a sync.Pool behind
// them, as before. Get and Put are safe for concurrent use: Send runs on
// any goroutine. A free list is a buffered channel, made when its class is
// first used, and the bytes held an atomic count: no mutex is shared
// between the connection actors that use the pool (DESIGN.md).
package framepool

import (
	"math/bits"
	"sync"
	"sync/atomic"
)

const (
	minPooledShift = 10 // 1 KiB
	maxPooledShift = 24 // 16 MiB
	classSteps     = 4  // size classes per doubling
	numClasses     = (maxPooledShift - minPooledShift + 1) * classSteps
)

// The bounds of the free lists. A pipelined load of 64 KiB tokens on one
// connection keeps up to 73 frame buffers of 80 KiB in use at once (the
// load generator keeping 4 MiB outstanding): 4 MiB in one class covers most
// of it, and the sync.Pool the rest between two collections.
const (
	maxHeld     = 8 << 20 // bytes in all the free lists
	perClass    = 4 << 20 // bytes in one class's list
	minPerClass = 2       // buffers a class may keep, whatever their size
	maxPerClass = 256     // ... and at most, however small
)

// class is one size class: its free list and the sync.Pool behind it.
type class struct {
	free atomic.Pointer[chan []byte] // empty buffers of the class's size; nil until first used
	max  int                         // the free list's bound, in buffers
	pool sync.Pool
}

// list returns the class's free list, making it on first use (a list made
// by a goroutine that lost the race is dropped).
func (c *class) list() chan []byte {
	if p := c.free.Load(); p != nil {
		return *p
	}
	ch := make(chan []byte, c.max)
	if c.free.CompareAndSwap(nil, &ch) {
		return ch
	}
	return *c.free.Load()
}

var (
	classes [numClasses]class
	held    atomic.Int64 // bytes in the free lists
)

func init() {
	for i := range classes {
		classes[i].max = min(max(minPerClass, perClass/classSize(i)), maxPerClass)
	}
}

// classSize is the buffer size of class i.
func classSize(i int) int {
	shift := i/classSteps + minPooledShift
	base := 1 << (shift - 1)
	return base + (i%classSteps+1)*base/classSteps
}

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

// Get returns an empty buffer with room for at least n bytes. It is safe
// for concurrent use.
func Get(n int) []byte {
	i, size, ok := frameClass(n)
	if !ok {
		return make([]byte, 0, n)
	}
	c := &classes[i]
	if p := c.free.Load(); p != nil {
		select {
		case b := <-*p:
			held.Add(-int64(size))
			return b
		default:
		}
	}
	if p, ok := c.pool.Get().(*[]byte); ok {
		return (*p)[:0]
	}
	return make([]byte, 0, size)
}

// Put gives a buffer back, if it is of a pooled class. The caller must not
// use it, nor anything that refers to it, afterwards. It is safe for
// concurrent use.
func Put(b []byte) {
	i, size, ok := frameClass(cap(b))
	if !ok || size != cap(b) {
		return
	}
	b = b[:0]
	c := &classes[i]
	if held.Add(int64(size)) <= maxHeld {
		select {
		case c.list() <- b:
			return
		default:
		}
	}
	held.Add(-int64(size))
	// A variable of this branch's own: with &b, b itself escaped and every
	// Put allocated its slice header, a free list's too.
	spill := b
	c.pool.Put(&spill)
}
