package actors

import (
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// The server's memory budget for the frames its connections are still
// reading (ServerOptions.MemoryBudget): without it, every connection may
// hold a token up to Limits.MaxTokenSize that it has not finished reading,
// and a few thousand clients that send 16 MiB without ever ending a token
// hold tens of gigabytes.
//
// A connection holds up to budgetFree bytes of unfinished frames without
// asking (small tokens never ask); past that, it asks the server actor for
// the bytes it needs, in steps of budgetStep, and stops reading until they
// are granted. The server actor grants from the budget in the order asked,
// takes back what a connection gives back (its token ended, and went to the
// user) and, when it ends, whatever it still held. A connection that waits
// longer than ServerOptions.MemoryWait is cut with ErrMemoryBudget. Grants
// are messages: no counter is shared between the connection actors.

// Defaults of the memory budget.
const (
	// DefaultMemoryBudget is the server's budget for unfinished frames
	// beyond what each connection holds without asking (budgetFree).
	DefaultMemoryBudget = 256 << 20
	// DefaultMemoryWait is how long a connection may wait for the budget
	// before it is cut with ErrMemoryBudget.
	DefaultMemoryWait = 30 * time.Second

	// budgetFree is what a connection holds of unfinished frames without
	// asking; budgetStep the unit of what it asks and gives back.
	budgetFree = 64 << 10
	budgetStep = 1 << 20
)

// ErrMemoryBudget is why a connection is cut after waiting
// ServerOptions.MemoryWait for the memory an unfinished token needs: other
// connections held the server's MemoryBudget meanwhile.
var ErrMemoryBudget = errors.New("tokenserver: the server's memory budget for unfinished tokens is held by other connections")

// budgetConfig is what a server tells its connection actors of the budget.
type budgetConfig struct{ wait time.Duration }

// The messages of the budget.
type (
	// memoryAsk: a connection needs bytes more of the budget.
	memoryAsk struct {
		c     *Connection
		bytes int
	}
	// memoryGrant: the server granted bytes.
	memoryGrant struct{ bytes int }
	// memoryBack: a connection gives back bytes it no longer holds.
	memoryBack struct {
		c     *Connection
		bytes int
	}
)

// serverBudget is the server actor's account of the budget.
type serverBudget struct {
	free    int
	held    map[*Connection]int
	waiting []memoryAsk // in the order asked
	stats   *stats      // BudgetInUse, BudgetWaits
}

func newServerBudget(total int, st *stats) *serverBudget {
	return &serverBudget{free: total, held: map[*Connection]int{}, stats: st}
}

// ask grants m at once if nobody waits before it and the budget has it, or
// queues it.
func (b *serverBudget) ask(ctx actor.Context, m memoryAsk) {
	if len(b.waiting) == 0 && m.bytes <= b.free {
		b.grant(ctx, m)
		return
	}
	b.stats.budgetWaits.Add(1)
	b.waiting = append(b.waiting, m)
}

func (b *serverBudget) grant(ctx actor.Context, m memoryAsk) {
	b.free -= m.bytes
	b.held[m.c] += m.bytes
	b.stats.budgetInUse.Add(int64(m.bytes))
	ctx.Send(m.c.PID(), memoryGrant{m.bytes})
}

// back takes bytes back from c and serves who waits.
func (b *serverBudget) back(ctx actor.Context, c *Connection, bytes int) {
	bytes = min(bytes, b.held[c])
	b.held[c] -= bytes
	if b.held[c] == 0 {
		delete(b.held, c)
	}
	b.free += bytes
	b.stats.budgetInUse.Add(-int64(bytes))
	b.serve(ctx)
}

// gone takes back everything c held, and its ask if it waited.
func (b *serverBudget) gone(ctx actor.Context, c *Connection) {
	for i, m := range b.waiting {
		if m.c == c {
			b.waiting = append(b.waiting[:i], b.waiting[i+1:]...)
			break
		}
	}
	b.back(ctx, c, b.held[c])
}

// serve grants the asks that wait, in order, while the budget has them.
func (b *serverBudget) serve(ctx actor.Context) {
	for len(b.waiting) > 0 && b.waiting[0].bytes <= b.free {
		m := b.waiting[0]
		b.waiting = b.waiting[1:]
		b.grant(ctx, m)
	}
}

// The connection's side.

// checkBudget asks the owner for what the frames in progress need beyond
// what the connection holds, or gives back whole steps it no longer needs.
// It runs after each chunk is decoded.
func (a *connActor) checkBudget(ctx actor.Context) {
	if a.cfg.budget == nil || a.dec == nil || a.in.asking {
		return
	}
	need := a.dec.Held() - budgetFree - a.in.granted
	switch {
	case need > 0:
		ask := (need + budgetStep - 1) / budgetStep * budgetStep
		a.in.asking = true
		ctx.Send(a.cfg.owner, memoryAsk{a.h, ask})
		a.in.budgetWait.Start(ctx, a.cfg.budget.wait)
	case -need >= budgetStep && a.in.granted > 0:
		back := min(a.in.granted, -need/budgetStep*budgetStep)
		a.in.granted -= back
		ctx.Send(a.cfg.owner, memoryBack{a.h, back})
	}
}

// onGrant: the budget granted what the connection asked; it reads on.
func (a *connActor) onGrant(ctx actor.Context, bytes int) {
	a.in.granted += bytes
	a.in.asking = false
	a.in.budgetWait.Stop()
	a.resumeReading()
	a.checkBudget(ctx)
}

// onBudgetWait: the connection waited MemoryWait for the budget.
func (a *connActor) onBudgetWait(ctx actor.Context) {
	if !a.in.asking {
		return
	}
	a.die(ctx, fmt.Errorf("%w: an unfinished frame needs %d bytes, waited %v", ErrMemoryBudget, a.dec.Held(), a.cfg.budget.wait))
}
