package dispatch

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// eventually waits until cond holds, failing the test (with last's value)
// after 10 s.
func eventually(t *testing.T, what string, cond func() bool, last func() any) {
	t.Helper()
	for stop := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(stop) {
			t.Fatalf("timed out waiting for %s (last: %v)", what, last())
		}
	}
}

// poolParked counts the pool's parked workers.
func poolParked(p *WorkerPool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// parkWorkers runs n works at once on p, so that n workers run them, and
// waits until all n are parked.
func parkWorkers(t *testing.T, p *WorkerPool, n int) {
	t.Helper()
	release := make(chan struct{})
	var started, done sync.WaitGroup
	for range n {
		started.Add(1)
		done.Add(1)
		p.Schedule(func() {
			started.Done()
			<-release // n at a time: n workers
			done.Done()
		})
	}
	started.Wait()
	close(release)
	done.Wait()
	eventually(t, fmt.Sprintf("%d parked workers", n), func() bool { return poolParked(p) == n }, func() any { return poolParked(p) })
}

// TestWorkerPoolRunsParksAndSheds: work scheduled at once runs at once, on
// as many workers as it needs; they park when done, are reused, and exit
// once parked for idleFor.
func TestWorkerPoolRunsParksAndSheds(t *testing.T) {
	p := NewWorkerPool()
	defer p.Close()

	parkWorkers(t, p, 3)

	// Parked workers take new work without new goroutines.
	ran := make(chan struct{})
	p.Schedule(func() { close(ran) })
	<-ran
	eventually(t, "the worker back among the parked", func() bool { return poolParked(p) == 3 }, func() any { return poolParked(p) })

	// Once parked for idleFor, they exit (shed is what the janitor runs).
	p.mu.Lock()
	p.idleFor = 0
	p.mu.Unlock()
	p.shed()
	if n := poolParked(p); n != 0 {
		t.Fatalf("%d workers parked after shedding", n)
	}
}

// TestWorkerPoolJanitorSheds: the janitor timer, armed when a worker
// parks, lets it exit after idleFor without any other work coming.
func TestWorkerPoolJanitorSheds(t *testing.T) {
	p := NewWorkerPool()
	p.idleFor = 20 * time.Millisecond
	defer p.Close()
	ran := make(chan struct{})
	p.Schedule(func() { close(ran) })
	<-ran
	eventually(t, "the janitor to let the worker go", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.idle) == 0 && p.janitor == nil
	}, func() any { return poolParked(p) })
}

// TestWorkerPoolClose: close lets parked workers exit at once (goleak checks
// that they did), and work scheduled after close still runs.
func TestWorkerPoolClose(t *testing.T) {
	p := NewWorkerPool()
	ran := make(chan struct{})
	p.Schedule(func() { close(ran) })
	<-ran
	eventually(t, "a parked worker", func() bool { return poolParked(p) == 1 }, func() any { return poolParked(p) })
	p.Close()
	if n := poolParked(p); n != 0 {
		t.Fatalf("%d workers parked after close", n)
	}
	late := make(chan struct{})
	p.Schedule(func() { close(late) })
	select {
	case <-late:
	case <-time.After(5 * time.Second):
		t.Fatal("work scheduled after close did not run")
	}
	eventually(t, "no parked worker after close", func() bool { return poolParked(p) == 0 }, func() any { return poolParked(p) })
}

// TestWorkerPoolJanitorWaitsForTheNextWorker: a janitor run lets go the
// workers parked for idleFor and keeps the others, then comes back when the
// next of them has been parked for idleFor, and not later.
func TestWorkerPoolJanitorWaitsForTheNextWorker(t *testing.T) {
	p := NewWorkerPool()
	p.idleFor = time.Hour
	defer p.Close()
	parkWorkers(t, p, 2)

	// The first parked two hours ago, the second an hour ago but a second.
	const left = time.Second
	p.mu.Lock()
	now := time.Now()
	p.idle[0].parked = now.Add(-2 * time.Hour)
	p.idle[1].parked = now.Add(-p.idleFor + left)
	p.mu.Unlock()
	p.shed()
	if n := poolParked(p); n != 1 && time.Since(now) < left {
		t.Fatalf("%d workers parked after the janitor's run, want the one parked for less than idleFor", n)
	}
	eventually(t, "the janitor back for the second worker after its hour", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.idle) == 0 && p.janitor == nil
	}, func() any { return poolParked(p) })
}
