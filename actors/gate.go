package actors

import "sync/atomic"

// gate lets handle methods post to a connection actor without a message ever
// reaching it after it stopped. Send enters the gate, posts, and leaves; the
// actor closes the gate when the connection dies and stops only once nobody
// is inside, so every frame Send took reaches its mailbox and is written or
// handed back. The closed bit is also the connection's death (IsDead).
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
