package dispatch

import (
	"sync"
	"sync/atomic"
	"testing"
)

// A goroutine that offers itself gets the work scheduled while its offer is
// open, and runs it itself: no worker starts.
func TestOfferedGoroutineRunsTheWork(t *testing.T) {
	p := NewWorkerPool()
	defer p.Close()
	var h Helper
	if !p.Offer(&h) {
		t.Fatal("the first offer was refused")
	}
	ran := false
	p.Schedule(func() { ran = true })
	run := p.Take(&h)
	if run == nil {
		t.Fatal("the work scheduled during the offer did not come to the offering goroutine")
	}
	if ran {
		t.Fatal("the work ran before the offering goroutine ran it")
	}
	run()
	if !ran {
		t.Fatal("the work given is not the work scheduled")
	}
	if n := poolParked(p); n != 0 {
		t.Errorf("%d workers parked: a worker ran something", n)
	}
	// The offer is closed: the next work goes to a worker.
	done := make(chan struct{})
	p.Schedule(func() { close(done) })
	<-done
	if p.Take(&h) != nil {
		t.Error("a closed offer was given work")
	}
}

// With nothing scheduled, Take closes the offer and gives nothing; one
// goroutine's offer at a time.
func TestOfferWithoutWork(t *testing.T) {
	p := NewWorkerPool()
	defer p.Close()
	var a, b Helper
	if !p.Offer(&a) {
		t.Fatal("the first offer was refused")
	}
	if p.Offer(&b) {
		t.Fatal("a second offer was taken while the first is open")
	}
	if run := p.Take(&a); run != nil {
		t.Fatal("Take gave work that nobody scheduled")
	}
	if !p.Offer(&b) {
		t.Fatal("an offer was refused after the open one was closed")
	}
	if p.Take(&b) != nil {
		t.Fatal("Take gave work that nobody scheduled")
	}
}

// Under concurrent offers and schedules every work runs exactly once,
// either on the goroutine whose offer it took or on a worker.
func TestOffersUnderLoad(t *testing.T) {
	p := NewWorkerPool()
	defer p.Close()
	const goroutines, rounds = 8, 2000
	var ran, onOffer atomic.Int64
	var wg sync.WaitGroup
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var h Helper
			for range rounds {
				offered := p.Offer(&h)
				p.Schedule(func() { ran.Add(1) })
				if offered {
					if run := p.Take(&h); run != nil {
						onOffer.Add(1)
						run()
					}
				}
			}
		}()
	}
	wg.Wait()
	eventually(t, "every work run", func() bool { return ran.Load() == goroutines*rounds }, func() any { return ran.Load() })
	if onOffer.Load() == 0 {
		t.Error("no work ran on an offering goroutine")
	}
}

// Offering twice keeps one offer, and Take closes it; Take without an
// open offer gives nothing (and does not wait for work).
func TestOfferTwiceAndTakeTwice(t *testing.T) {
	p := NewWorkerPool()
	defer p.Close()
	var h Helper
	if !p.Offer(&h) {
		t.Fatal("the first offer was refused")
	}
	if !p.Offer(&h) {
		t.Fatal("h's second offer was refused while h's first is open")
	}
	ran := false
	p.Schedule(func() { ran = true })
	run := p.Take(&h)
	if run == nil {
		t.Fatal("the work scheduled did not come to h")
	}
	run()
	if !ran {
		t.Fatal("the work given is not the work scheduled")
	}
	if p.Take(&h) != nil {
		t.Error("a second Take gave work")
	}
}
