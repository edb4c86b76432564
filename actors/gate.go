package actors

import (
	"runtime"
	"sync/atomic"
)

// gate lets handle methods hand frames to a connection actor without any
// being lost to its end. Send enters the gate, pushes its frames on the
// shared sends stack, and leaves; the actor closes the gate when the
// connection dies and waits until nobody is inside before it takes the
// stack for the last time, so every frame Send took is written or handed
// back. The closed bit is also the connection's death (IsDead).
//
// Nothing inside the gate blocks or calls into an actor (the doorbell
// message goes after leaving it), so the actor may wait for it to empty on
// whatever goroutine it runs: the wait lasts a few atomic operations.
type gate struct{ v atomic.Int64 }

const gateClosed = int64(1) << 62

// enter reports whether the gate is open; if so the caller must leave.
func (g *gate) enter() bool {
	if g.v.Add(1)&gateClosed != 0 {
		g.v.Add(-1)
		return false
	}
	return true
}

// leave ends what enter began.
func (g *gate) leave() { g.v.Add(-1) }

// close shuts the gate and reports whether it was open.
func (g *gate) close() bool {
	for {
		v := g.v.Load()
		if v&gateClosed != 0 {
			return false
		}
		if g.v.CompareAndSwap(v, v|gateClosed) {
			return true
		}
	}
}

// isClosed reports whether the gate is shut.
func (g *gate) isClosed() bool { return g.v.Load()&gateClosed != 0 }

// empty reports whether nobody is inside the gate.
func (g *gate) empty() bool { return g.v.Load()&^gateClosed == 0 }

// waitEmpty waits until nobody is inside the gate, which must be closed.
func (g *gate) waitEmpty() {
	for !g.empty() {
		runtime.Gosched()
	}
}
