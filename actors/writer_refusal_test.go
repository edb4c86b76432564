package actors

import "testing"

// refusingWriter is a write pump that still holds a batch: it refuses the
// next one.
type refusingWriter struct{}

func (refusingWriter) Write(...[]byte) bool { return false }
func (refusingWriter) Close()               {}

// The write pump's Write refuses a batch while it holds one. The actor never
// hands it one then; should it happen all the same, the batch is handed back
// as unsent and leaves the queue count: it is not taken for in flight (it
// was then released as written by the previous batch's chunkWritten, or
// reported maybe sent, though it never reached the socket).
func TestRefusedBatchIsHandedBack(t *testing.T) {
	s := &connShared{}
	w := newWriteSide(Limits{HighWaterMark: 1 << 20, LowWaterMark: 1 << 19})
	batch := [][]byte{[]byte("z\n"), []byte("w\n")}
	s.queued.Add(4)
	if w.hand(refusingWriter{}, s, batch, 4, 2) {
		t.Fatal("hand reported a refused batch as taken")
	}
	if w.writing || w.inFlight != nil || string(w.unsent) != "z\nw\n" || s.queued.Load() != 0 {
		t.Errorf("refused batch: writing %v, in flight %q, unsent %q, queued %d; want it unsent and out of the count",
			w.writing, w.inFlight, w.unsent, s.queued.Load())
	}
}
