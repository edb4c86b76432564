package actors

import (
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// How the actors here run. Proto.Actor's default dispatcher starts a new
// goroutine each time a mailbox gets work, and each new goroutine grows its
// stack again as soon as the actor runs (a fifth of a busy server's CPU went
// to runtime.newstack). So:
//
//   - the server, client and standalone owner actors, and the listener, run
//     on a workerPool: goroutines that live, each taking the next mailbox
//     that has work, so their stacks stay grown;
//   - connection actors run inline (actor.NewSynchronizedDispatcher): a
//     message is handled on the goroutine that sent it (a pump, the owner,
//     a caller of Send), one at a time all the same, which saves a wake-up
//     per step of every token. A connection actor never blocks and never
//     runs user code, so this is safe; its owner, which runs user callbacks,
//     keeps goroutines of its own.

// workerIdle is how long an idle worker waits for work before it exits.
const workerIdle = 5 * time.Second

// workerPool is a Proto.Actor Dispatcher that runs mailboxes on goroutines
// that live. Schedule never blocks: it hands the work to an idle worker, or
// starts one. Workers exit after workerIdle without work, and at once, once
// idle, after close.
type workerPool struct {
	work       chan func()
	quit       chan struct{}
	closeOnce  sync.Once
	throughput int
}

var _ actor.Dispatcher = (*workerPool)(nil)

func newWorkerPool() *workerPool {
	return &workerPool{work: make(chan func()), quit: make(chan struct{}), throughput: 300}
}

// Schedule runs fn on an idle worker, or on a new one.
func (p *workerPool) Schedule(fn func()) {
	select {
	case p.work <- fn:
	default:
		go p.worker(fn)
	}
}

// Throughput is how many messages a mailbox handles before it yields.
func (p *workerPool) Throughput() int { return p.throughput }

func (p *workerPool) worker(fn func()) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		fn()
		idle.Reset(workerIdle)
		select {
		case fn = <-p.work:
		case <-p.quit:
			return
		case <-idle.C:
			return
		}
	}
}

// close lets idle workers exit; one that is busy exits when done. Work
// scheduled after close still runs, on a worker that then exits.
func (p *workerPool) close() { p.closeOnce.Do(func() { close(p.quit) }) }

// inline is the dispatcher of connection actors.
var inline = actor.NewSynchronizedDispatcher(300)
