package actors

// coalesceSize is the size of the buffers small frames are gathered in, so
// that many small tokens leave in few TLS records; a frame at least
// coalesceMin long is queued as it is, without a copy.
const (
	coalesceSize = 64 << 10
	coalesceMin  = 8 << 10
)

// outbox holds the frames a connection actor has for the writer while the
// writer is busy. It is owned by that actor alone.
type outbox struct {
	segs   [][]byte
	tail   int // index in segs of the buffer small frames go to; -1: none
	size   int // bytes queued
	tokens int // tokens among the queued frames
}

func newOutbox() outbox { return outbox{tail: -1} }

// push queues encoded frames, tokens of them tokens.
func (o *outbox) push(frame []byte, tokens int) {
	o.size += len(frame)
	o.tokens += tokens
	if len(frame) >= coalesceMin {
		o.segs = append(o.segs, frame)
		o.tail = -1
		return
	}
	if o.tail < 0 || len(o.segs[o.tail])+len(frame) > coalesceSize {
		o.segs = append(o.segs, frameBuf(coalesceSize))
		o.tail = len(o.segs) - 1
	}
	o.segs[o.tail] = append(o.segs[o.tail], frame...)
	releaseFrame(frame) // copied: its buffer can serve again
}

// take returns every queued segment, in order, and empties the outbox.
func (o *outbox) take() [][]byte {
	segs := o.segs
	o.segs, o.tail, o.size, o.tokens = nil, -1, 0, 0
	return segs
}

// release gives written buffers back for reuse by Send and push.
func release(segs [][]byte) {
	for _, s := range segs {
		releaseFrame(s)
	}
}

// empty reports whether nothing is queued.
func (o *outbox) empty() bool { return o.size == 0 }

// flatten returns the queued bytes as one slice and empties the outbox.
func (o *outbox) flatten() []byte {
	if o.empty() {
		o.take()
		return nil
	}
	out := make([]byte, 0, o.size)
	for _, s := range o.take() {
		out = append(out, s...)
	}
	return out
}
