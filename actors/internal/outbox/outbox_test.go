package outbox

import (
	"bytes"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Frames come out in order, small ones gathered in few buffers, large ones
// as they are; the counts follow.
func TestOutboxKeepsOrderAndGathersSmallFrames(t *testing.T) {
	var o Outbox
	if !o.Empty() || o.Take() != nil {
		t.Fatal("the zero Outbox is not empty")
	}
	var want []byte
	large := bytes.Repeat([]byte("L"), coalesceMin)
	for i := 0; i < 3000; i++ {
		f := []byte{byte('a' + i%26), '\n'}
		if i == 1000 {
			f = large
		}
		o.Push(f, 1)
		want = append(want, f...)
	}
	if o.Size() != len(want) || o.Tokens() != 3000 {
		t.Fatalf("Size %d, Tokens %d; want %d, 3000", o.Size(), o.Tokens(), len(want))
	}
	segs := o.Take()
	if len(segs) != 3 || &segs[1][0] != &large[0] {
		t.Errorf("%d segments, the large frame not queued as it is", len(segs))
	}
	if got := bytes.Join(segs, nil); !bytes.Equal(got, want) {
		t.Error("the frames came out changed or out of order")
	}
	if !o.Empty() || o.Size() != 0 || o.Tokens() != 0 {
		t.Error("Take did not empty the outbox")
	}
	o.Push([]byte("x\n"), 1)
	o.Push(large, 1)
	if got := o.Flatten(); !bytes.Equal(got, append([]byte("x\n"), large...)) || !o.Empty() {
		t.Error("Flatten did not return the frames, or did not empty the outbox")
	}
}

// Small frames fill a gathering buffer to coalesceSize exactly, and the
// next one that would not fit starts another: a buffer never grows past
// its frame pool class (which would copy it and lose it to the pool).
func TestOutboxFillsBuffersToCoalesceSize(t *testing.T) {
	var o Outbox
	frame := bytes.Repeat([]byte("f"), coalesceMin/2)
	perBuffer := coalesceSize / len(frame)
	for range perBuffer + 1 {
		o.Push(append([]byte(nil), frame...), 1)
	}
	segs := o.Take()
	if len(segs) != 2 {
		t.Fatalf("%d frames of %d bytes in %d buffers, want 2", perBuffer+1, len(frame), len(segs))
	}
	if len(segs[0]) != coalesceSize || cap(segs[0]) != coalesceSize || len(segs[1]) != len(frame) {
		t.Errorf("buffers of %d (cap %d) and %d bytes; want %d (cap %d) and %d",
			len(segs[0]), cap(segs[0]), len(segs[1]), coalesceSize, coalesceSize, len(frame))
	}
	Release(segs)
}
