package framepool

import (
	"runtime"
	"sync"
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

// drain empties every free list, so that a test starts from none.
func drain() {
	for i := range classes {
		p := classes[i].free.Load()
		if p == nil {
			continue
		}
		for {
			select {
			case b := <-*p:
				held.Add(-int64(cap(b)))
				continue
			default:
			}
			break
		}
	}
}

// A buffer given back is handed out again after garbage collections, which
// empty a sync.Pool: bulk loads run tens of collections a second.
func TestBuffersSurviveGC(t *testing.T) {
	drain()
	for _, n := range []int{1 << 10, 64 << 10, 1 << 20} {
		b := Get(n)
		b = append(b, 'x')
		first := &b[0]
		Put(b)
		runtime.GC()
		runtime.GC()
		runtime.GC()
		again := Get(n)
		if len(again) != 0 || cap(again) != cap(b) {
			t.Fatalf("Get(%d) after GC: len %d cap %d, want 0, %d", n, len(again), cap(again), cap(b))
		}
		if &again[:1][0] != first {
			t.Errorf("Get(%d) after three GCs allocated a new buffer: the one given back was lost", n)
		}
		Put(again)
	}
}

// A buffer that goes to a free list and comes back costs no allocation
// (b escaped to the heap when Put took &b for the sync.Pool, on every call).
func TestFreeListAllocatesNothing(t *testing.T) {
	drain()
	for _, n := range []int{1 << 10, 64 << 10, 1 << 20} {
		Put(Get(n))
		if allocs := testing.AllocsPerRun(100, func() { Put(Get(n)) }); allocs != 0 {
			t.Errorf("Get(%d) then Put: %v allocations, want 0", n, allocs)
		}
	}
	drain()
}

// The free lists are bounded: per class in buffers, and in bytes in all;
// what they have no room for is not kept by them (it goes to the sync.Pool).
func TestFreeListBounds(t *testing.T) {
	drain()
	i, size, _ := frameClass(8 << 10)
	bufs := make([][]byte, 0, classes[i].max+10)
	for range cap(bufs) {
		bufs = append(bufs, Get(size))
	}
	for _, b := range bufs {
		Put(b)
	}
	if n := len(classes[i].list()); n != classes[i].max || n*size > perClass {
		t.Errorf("class of %d bytes keeps %d buffers after %d given back; want its bound %d (%d bytes at most)",
			size, n, len(bufs), classes[i].max, perClass)
	}
	if got := held.Load(); got != int64(classes[i].max*size) {
		t.Errorf("held %d bytes, want %d", got, classes[i].max*size)
	}
	// Large classes keep minPerClass each, until maxHeld is reached.
	big := 0
	for n := 1 << 20; n <= 16<<20; n += n / 4 {
		for range minPerClass + 1 {
			Put(make([]byte, 0, n))
			big++
		}
	}
	if got := held.Load(); got > maxHeld {
		t.Errorf("the free lists hold %d bytes, over their bound %d", got, maxHeld)
	}
	for j := range classes {
		if n := len(classes[j].list()); n > classes[j].max {
			t.Errorf("class %d keeps %d buffers, over its bound %d", j, n, classes[j].max)
		}
	}
	drain()
	if held.Load() != 0 {
		t.Errorf("held %d bytes after every buffer was taken", held.Load())
	}
}

// Get and Put from many goroutines at once never hand one buffer to two
// holders.
func TestConcurrentUse(t *testing.T) {
	drain()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for k := range 300 {
				n := 1<<10 + (g*7919+k*104729)%(24<<10)
				b := Get(n)[:n]
				mark := byte(g)
				for j := range b {
					b[j] = mark
				}
				runtime.Gosched()
				for j := range b {
					if b[j] != mark {
						t.Errorf("goroutine %d: byte %d of its buffer changed to %d while it held it", g, j, b[j])
						return
					}
				}
				Put(b)
			}
		})
	}
	wg.Wait()
	if got := held.Load(); got < 0 || got > maxHeld {
		t.Errorf("held %d bytes, want within [0, %d]", got, maxHeld)
	}
}

// The size classes are the documented ones: four per doubling, at 5/8, 6/8,
// 7/8 and 8/8 of a power of two from 1 KiB to 16 MiB, and the class
// frameClass picks for a buffer of a class's size is that class.
func TestClassSizesAreEighthsOfPowersOfTwo(t *testing.T) {
	for i := range numClasses {
		pow := 1 << (minPooledShift + i/classSteps)
		want := (5 + i%classSteps) * pow / 8
		if got := classSize(i); got != want {
			t.Fatalf("classSize(%d) = %d, want %d/8 of %d = %d", i, got, 5+i%classSteps, pow, want)
		}
		if want < 1<<minPooledShift {
			continue // below 1 KiB: not pooled
		}
		if j, size, ok := frameClass(want); !ok || j != i || size != want {
			t.Fatalf("frameClass(%d) = %d, %d, %v; want class %d of that size", want, j, size, ok, i)
		}
	}
	if got, want := classSize(numClasses-1), 1<<maxPooledShift; got != want {
		t.Errorf("the largest class holds %d bytes, want %d", got, want)
	}
}

// Each free list keeps at most perClass bytes (and maxPerClass buffers),
// but minPerClass buffers of the largest classes, as long as the free lists
// hold maxHeld bytes at most in all: exactly that much may be held.
func TestFreeListKeepsPerClassBytes(t *testing.T) {
	for _, c := range []struct{ size, keeps int }{
		{1 << 10, maxPerClass}, // 4 MiB would be 4096 buffers
		{64 << 10, 64},         // 4 MiB
		{80 << 10, 51},         // 4 MiB / 80 KiB, rounded down
		{1 << 20, 4},           // 4 MiB
		{1280 << 10, 3},        // 3.75 MiB
		{2 << 20, minPerClass}, // 4 MiB
		{3 << 20, minPerClass}, // 6 MiB, over perClass: the minimum
		{4 << 20, minPerClass}, // 8 MiB, maxHeld exactly
		{8 << 20, 1},           // maxHeld exactly in one buffer
		{16 << 20, 0},          // one buffer is over maxHeld
	} {
		drain()
		i, size, ok := frameClass(c.size)
		if !ok || size != c.size {
			t.Fatalf("frameClass(%d) = %d, %d, %v; want a class of that size", c.size, i, size, ok)
		}
		for range c.keeps + 1 {
			Put(make([]byte, 0, size))
		}
		if n, got := len(classes[i].list()), held.Load(); n != c.keeps || got != int64(c.keeps*size) {
			t.Errorf("the class of %d bytes keeps %d buffers (%d bytes held); want %d (%d bytes)",
				size, n, got, c.keeps, c.keeps*size)
		}
	}
	drain()
}
