package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/tokenserver/tokenserver/actors"
)

// execReadWindow is serve's Limits.ReadWindow with --exec: one read of a
// connection waits for its commands before the connection stops reading.
// With a slow command per token a deeper window gains nothing, and one
// bounds what a connection holds to about one token (the one being run, up
// to --max-token-size) and one read.
const execReadWindow = 1

// execHandler is serve --exec: a handler actor (ServerOptions.Handler) that
// gets every token as a TokenReceived and runs the command for it, outside
// the actor, replying with the command's stdout. The commands of one
// connection run one at a time, in order. Flow control is the library's: a
// token's Credit goes back only when its command has ended, so a connection
// whose commands are behind stops reading, TCP pushes back on its client, and
// no token is ever dropped for being behind.
type execHandler struct {
	system *actor.ActorSystem // the server's runtime too (Runtime.System)
	pid    *actor.PID
	cancel context.CancelFunc // kills the running commands
	wg     *sync.WaitGroup    // the command goroutines
	log    *slog.Logger
}

// startExecHandler starts the handler actor, in an actor system of its own
// that the server must share, running the commands r describes (r.ctx is
// set here).
func startExecHandler(r *commandRunner) *execHandler {
	ctx, cancel := context.WithCancel(context.Background())
	r.ctx = ctx
	h := &execHandler{system: actors.NewQuietSystem(), cancel: cancel, wg: &sync.WaitGroup{}, log: r.log}
	h.pid = h.system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor {
		return &execActor{run: r, wg: h.wg, conns: map[uint64]*execConn{}}
	}))
	return h
}

// closing tells the handler that the server is closing: it starts no more
// commands and gives back the credit of the tokens that wait, so that their
// connections can close; a command that runs may finish and reply until the
// server's close deadline.
func (h *execHandler) closing() {
	h.system.Root.Send(h.pid, execClosing{})
}

// stop stops the handler actor once it has handled the events already sent
// to it, kills the running commands, waits up to d for their goroutines, and
// shuts the actor system down. Call it after the server's Shutdown.
func (h *execHandler) stop(d time.Duration) {
	if err := h.system.Root.PoisonFuture(h.pid).Wait(); err != nil { // Wait gives up after 10 s
		h.log.Warn("exec handler did not stop in time", "err", err)
	}
	h.cancel() // no command starts after the actor stopped
	done := make(chan struct{})
	go func() {
		h.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d):
		h.log.Warn("exec commands still running after shutdown")
	}
	h.system.Shutdown()
}

// execActor is the handler actor's state: the tokens of each connection
// that wait for the command.
type execActor struct {
	run     *commandRunner
	wg      *sync.WaitGroup
	conns   map[uint64]*execConn // by connection id
	closing bool                 // the server is closing: no more commands
}

// execConn is one connection's work.
type execConn struct {
	pid     *actor.PID // its connection actor: replies and credit go there
	waiting [][]byte   // tokens taken and not yet run, oldest first
	running bool       // a command runs for the token before them
	skipped int        // tokens credited without a command, the server closing
}

// execClosing: the server is closing (execHandler.closing).
type execClosing struct{}

// commandDone: the command for a connection's running token has ended.
type commandDone struct {
	connID     uint64
	tokenBytes int
	out        []byte
	err        error
	took       time.Duration
}

// Receive handles one message.
func (a *execActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actors.TokenReceived:
		c := a.conns[m.ConnID]
		if c == nil {
			c = &execConn{pid: m.Conn}
			a.conns[m.ConnID] = c
		}
		c.waiting = append(c.waiting, m.Data)
		a.runNext(ctx, m.ConnID, c)
	case commandDone:
		a.done(ctx, m)
	case execClosing:
		a.closing = true
		for _, c := range a.conns {
			a.skipWaiting(ctx, c)
		}
	case *actors.Closed:
		if m.Conn == nil {
			return // the server's own close
		}
		if c := a.conns[m.ConnID]; c != nil && len(c.waiting)+c.skipped > 0 {
			a.run.log.Warn("connection closed: tokens not run", "conn", m.ConnID, "tokens", len(c.waiting)+c.skipped)
		}
		delete(a.conns, m.ConnID)
	}
}

// runNext starts the command for c's oldest waiting token, unless one runs
// or the server is closing.
func (a *execActor) runNext(ctx actor.Context, id uint64, c *execConn) {
	if a.closing {
		a.skipWaiting(ctx, c)
		return
	}
	if c.running || len(c.waiting) == 0 {
		return
	}
	token := c.waiting[0]
	c.waiting[0] = nil
	if c.waiting = c.waiting[1:]; len(c.waiting) == 0 {
		c.waiting = nil
	}
	c.running = true
	self, root := ctx.Self(), ctx.ActorSystem().Root
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		start := time.Now()
		out, err := a.run.run(token)
		root.Send(self, commandDone{connID: id, tokenBytes: len(token), out: out, err: err, took: time.Since(start)})
	}()
}

// done replies with the command's output (a failed command is logged and
// gets no reply), returns the token's credit, and runs the next token.
func (a *execActor) done(ctx actor.Context, m commandDone) {
	c := a.conns[m.connID]
	if c == nil {
		return // closed meanwhile: nobody to reply to
	}
	c.running = false
	if m.err != nil {
		a.run.log.Error("exec failed: no reply for this token", "conn", m.connID, "tokenBytes", m.tokenBytes, "err", m.err)
	} else {
		// A reply the connection cannot take is reported by OnDropped.
		ctx.Send(c.pid, &actors.SendToken{Data: m.out})
		a.run.log.Debug("exec done", "conn", m.connID, "took", m.took)
	}
	ctx.Send(c.pid, &actors.Credit{Tokens: 1})
	a.runNext(ctx, m.connID, c)
}

// skipWaiting gives back the credit of c's waiting tokens without running
// them (the server is closing), and counts them for the log.
func (a *execActor) skipWaiting(ctx actor.Context, c *execConn) {
	if n := len(c.waiting); n > 0 {
		c.skipped += n
		c.waiting = nil
		ctx.Send(c.pid, &actors.Credit{Tokens: n})
	}
}
