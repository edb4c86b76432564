// Package outbox holds the frames a connection actor has for its write pump
// while the pump writes the previous batch, so that they leave together.
// Small frames are gathered in shared buffers, so that many small tokens
// leave in few TLS records; a large frame is queued as it is, without a
// copy. An Outbox belongs to one actor; the zero value is empty and ready.
package outbox

import "github.com/tokenserver/tokenserver/actors/internal/framepool"

// coalesceSize is the size of the buffers small frames are gathered in; a
// frame at least coalesceMin long is queued as it is.
const (
	coalesceSize = 64 << 10
	coalesceMin  = 8 << 10
)

// Outbox is the frames waiting for the write pump, in order.
type Outbox struct {
	segs   [][]byte
	tail   int // 1 + the index in segs of the buffer small frames go to; 0: none
	size   int // bytes queued
	tokens int // tokens among the queued frames
}

// Push queues encoded frames, tokens of them tokens. A frame it copies goes
// back to the frame pool.
func (o *Outbox) Push(frame []byte, tokens int) {
	o.size += len(frame)
	o.tokens += tokens
	if len(frame) >= coalesceMin {
		o.segs = append(o.segs, frame)
		o.tail = 0
		return
	}
	if o.tail == 0 || len(o.segs[o.tail-1])+len(frame) > coalesceSize {
		o.segs = append(o.segs, framepool.Get(coalesceSize))
		o.tail = len(o.segs)
	}
	o.segs[o.tail-1] = append(o.segs[o.tail-1], frame...)
	framepool.Put(frame) // copied: its buffer can serve again
}

// Take returns every queued segment, in order, and empties the outbox.
func (o *Outbox) Take() [][]byte {
	segs := o.segs
	*o = Outbox{}
	return segs
}

// Size is the bytes queued.
func (o *Outbox) Size() int { return o.size }

// Tokens is the tokens among the queued frames.
func (o *Outbox) Tokens() int { return o.tokens }

// Empty reports whether nothing is queued.
func (o *Outbox) Empty() bool { return o.size == 0 }

// Flatten returns the queued bytes as one slice and empties the outbox.
func (o *Outbox) Flatten() []byte {
	if o.Empty() {
		o.Take()
		return nil
	}
	out := make([]byte, 0, o.size)
	for _, s := range o.Take() {
		out = append(out, s...)
	}
	return out
}

// Release gives written segments back to the frame pool.
func Release(segs [][]byte) {
	for _, s := range segs {
		framepool.Put(s)
	}
}
