package actors

import (
	"testing"

	"github.com/tokenserver/tokenserver/wire"
)

// The queue count (connShared.queued) is a counter: handles add what Send
// takes, the actor subtracts what leaves. The end of a connection hands
// back what it did not write by subtracting it; it never stores into the
// count, which a handle may add to at that very moment. Here a handle adds
// while the end accounting runs, from a count of any value: the sum holds.
func TestEndAccountingKeepsConcurrentAdds(t *testing.T) {
	for try := 0; try < 1000; try++ {
		s := &connShared{}
		base := int64(try%7 - 3)
		s.queued.Store(base)
		w := newWriteSide(Limits{HighWaterMark: 1 << 20, LowWaterMark: 1 << 19})
		added := make(chan struct{})
		go func() {
			s.queued.Add(100)
			close(added)
		}()
		w.takeDropped(s, wire.Token1)
		<-added
		if got := s.queued.Load(); got != base+100 {
			t.Fatalf("try %d: the count is %d after an add of 100 to %d", try, got, base)
		}
	}
}
