package actors

import "testing"

// refusingWriter is a write pump that still holds a batch: it refuses the
// next one.
type refusingWriter struct{}

func (refusingWriter) Write(...[]byte) bool                 { return false }
func (refusingWriter) WriteNow([][]byte) (int, bool, error) { return 0, false, nil }
func (refusingWriter) Close()                               {}

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
	if taken, _, _ := w.hand(refusingWriter{}, s, batch, 4, 2, true); taken {
		t.Fatal("hand reported a refused batch as taken")
	}
	if w.writing || w.inFlight != nil || string(w.unsent) != "z\nw\n" || s.queued.Load() != 0 {
		t.Errorf("refused batch: writing %v, in flight %q, unsent %q, queued %d; want it unsent and out of the count",
			w.writing, w.inFlight, w.unsent, s.queued.Load())
	}
}

// nowWriter is a write pump whose WriteNow writes (or fails) at once.
type nowWriter struct {
	err    error
	called *int
}

func (nowWriter) Write(...[]byte) bool { return false }
func (w nowWriter) WriteNow(batch [][]byte) (int, bool, error) {
	*w.called++
	n := 0
	for _, b := range batch {
		n += len(b)
	}
	if w.err != nil {
		return 0, true, w.err
	}
	return n, true, nil
}
func (nowWriter) Close() {}

// A batch written at once is in flight like one the pump took, and is
// settled by the chunkWritten that follows (now); one whose write failed
// is in flight too, for the pump's writeEnded to settle (not now). Without
// tryNow, WriteNow is not asked.
func TestBatchWrittenNow(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tryNow bool
		err    error
	}{{"written", true, nil}, {"failed", true, errWriterRefused}, {"not tried", false, nil}} {
		t.Run(tc.name, func(t *testing.T) {
			s := &connShared{}
			w := newWriteSide(Limits{HighWaterMark: 1 << 20, LowWaterMark: 1 << 19})
			batch := [][]byte{[]byte("z\n"), []byte("w\n")}
			s.queued.Add(4)
			called := 0
			taken, now, n := w.hand(nowWriter{err: tc.err, called: &called}, s, batch, 4, 2, tc.tryNow)
			if !tc.tryNow {
				if called != 0 || taken {
					t.Fatalf("WriteNow asked %d times, taken %v; want not asked, and the (refusing) pump's answer", called, taken)
				}
				return
			}
			if !taken || now != (tc.err == nil) || (tc.err == nil && n != 4) {
				t.Fatalf("hand = %v, %v, %d", taken, now, n)
			}
			if !w.writing || len(w.inFlight) != 2 || w.inFlightSize != 4 || w.inFlightTokens != 2 || s.queued.Load() != 4 {
				t.Errorf("in flight: writing %v, %d buffers, %d bytes, %d tokens, queued %d; want the batch, still counted until settled",
					w.writing, len(w.inFlight), w.inFlightSize, w.inFlightTokens, s.queued.Load())
			}
		})
	}
}
