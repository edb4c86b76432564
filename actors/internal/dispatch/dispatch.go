// Package dispatch holds how the actors of package actors run: a pool of
// goroutines that live, for the server, client and standalone owner
// actors, and the inline dispatcher of connection actors.
//
// Proto.Actor's default dispatcher starts a new goroutine each time a
// mailbox gets work, and each new goroutine grows its stack again as soon as
// the actor runs (a fifth of a busy server's CPU went to runtime.newstack).
// So:
//
//   - the owner actors, and the listener, run on a [WorkerPool]: goroutines
//     that live, each taking the next mailbox that has work, so their stacks
//     stay grown;
//   - connection actors run [Inline] (actor.NewSynchronizedDispatcher): a
//     message is handled on the goroutine that sent it (a pump, the owner, a
//     caller of Send), one at a time all the same, which saves a wake-up per
//     step of every token. A connection actor never blocks and never runs
//     user code, so this is safe; its owner, which runs user callbacks,
//     does not run inline: it keeps goroutines of its own;
//   - but a read pump may offer itself to its owner's pool ([Helper]) while
//     it posts a chunk, and then runs the owner's mailbox run that the chunk
//     wakes, after its post has returned (so never inside a connection
//     actor's message, and never on a user's goroutine). Waking a worker
//     costs more than the work on a round trip: Go's scheduler wakes an idle
//     thread whenever a goroutine readies another (golang/go#32113), and on
//     one connection that was half the server's CPU per round trip.
package dispatch

import (
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// workerIdle is how long a worker may stay parked before it exits.
const workerIdle = 5 * time.Second

// WorkerPool is a Proto.Actor Dispatcher that runs mailboxes on goroutines
// that live. Schedule never blocks: it hands the work to the worker parked
// last, or starts one. A parked worker waits on a channel of its own, so
// handing it work is one channel send and one wake-up, with no timer to
// reset: a janitor timer, armed while workers are parked, lets those parked
// for workerIdle exit. After close, parked workers exit at once and busy
// ones when done; work scheduled after close still runs, on a worker that
// then exits.
type WorkerPool struct {
	throughput int
	idleFor    time.Duration // workerIdle, but for tests
	// offered is the goroutine that runs the next work scheduled, instead
	// of a worker (Offer), or nil.
	offered atomic.Pointer[Helper]

	mu      sync.Mutex
	idle    []*worker // parked, the longest parked first
	janitor *time.Timer
	closed  bool
}

// worker is one goroutine of a WorkerPool.
type worker struct {
	work   chan func() // capacity 1: its next work, or nil to exit
	parked time.Time
}

var _ actor.Dispatcher = (*WorkerPool)(nil)

// NewWorkerPool returns a pool with no worker yet.
func NewWorkerPool() *WorkerPool { return &WorkerPool{throughput: 300, idleFor: workerIdle} }

// Schedule runs fn on the goroutine that offered itself (Offer), if one
// has, or on a parked worker, or on a new one.
func (p *WorkerPool) Schedule(fn func()) {
	if h := p.offered.Swap(nil); h != nil {
		h.fn = fn
		h.given.Store(true)
		return
	}
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		w.work <- fn
		return
	}
	p.mu.Unlock()
	go p.run(&worker{work: make(chan func(), 1)}, fn)
}

// Throughput is how many messages a mailbox handles before it yields.
func (p *WorkerPool) Throughput() int { return p.throughput }

func (p *WorkerPool) run(w *worker, fn func()) {
	for fn != nil {
		fn()
		fn = p.park(w)
	}
}

// park puts w among the parked workers and returns its next work, or nil
// when it is to exit.
func (p *WorkerPool) park(w *worker) func() {
	w.parked = time.Now()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.idle = append(p.idle, w)
	if p.janitor == nil {
		p.janitor = time.AfterFunc(p.idleFor, p.shed)
	}
	p.mu.Unlock()
	return <-w.work
}

// shed lets the workers parked for idleFor exit, and arms the janitor
// again for the next one while any is parked.
func (p *WorkerPool) shed() {
	now := time.Now()
	p.mu.Lock()
	n := 0
	for n < len(p.idle) && now.Sub(p.idle[n].parked) >= p.idleFor {
		n++
	}
	stale := slices.Clone(p.idle[:n])
	p.idle = slices.Delete(p.idle, 0, n)
	if len(p.idle) > 0 && !p.closed {
		p.janitor.Reset(p.idleFor - now.Sub(p.idle[0].parked))
	} else {
		p.janitor = nil
	}
	p.mu.Unlock()
	for _, w := range stale {
		w.work <- nil
	}
}

// Close lets parked workers exit; one that is busy exits when done.
func (p *WorkerPool) Close() {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = nil
	if p.janitor != nil {
		p.janitor.Stop()
		p.janitor = nil
	}
	p.mu.Unlock()
	for _, w := range idle {
		w.work <- nil
	}
}

// Inline is the dispatcher of connection actors.
var Inline = actor.NewSynchronizedDispatcher(300)

// Helper is a goroutine's offer to run, itself, the next work scheduled on
// a pool (the mailbox run of an actor that a message it posts wakes),
// rather than wake a worker for it: a read pump that posts tokens to its
// owner runs the owner's mailbox itself, and the round trip is spared a
// wake-up of another thread. Each goroutine that offers has a Helper of
// its own.
type Helper struct {
	open  bool // Offer opened it and Take has not closed it (its goroutine's)
	fn    func()
	given atomic.Bool
}

// Offer opens h's offer, unless another goroutine's is open, and reports
// whether h's is open. Take closes it, and must follow an Offer that
// reported true: until then, work scheduled on the pool may wait for h's
// goroutine.
func (p *WorkerPool) Offer(h *Helper) bool {
	if !h.open {
		h.open = p.offered.CompareAndSwap(nil, h)
	}
	return h.open
}

// Take closes h's offer and returns the work Schedule gave it meanwhile,
// for the caller to run now, or nil (nil too when h had no offer open).
func (p *WorkerPool) Take(h *Helper) func() {
	if !h.open {
		return nil
	}
	h.open = false
	if p.offered.CompareAndSwap(h, nil) {
		return nil // nothing was scheduled
	}
	// Schedule took the offer: its work is on its way.
	for !h.given.Load() {
		runtime.Gosched()
	}
	fn := h.fn
	h.fn = nil
	h.given.Store(false)
	return fn
}
