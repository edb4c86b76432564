package actors

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tokenserver/tokenserver/supervisor"
	"github.com/tokenserver/tokenserver/tlsio"
	"github.com/tokenserver/tokenserver/wire"
)

// The connection actor owns one socket: nothing else reads, writes or closes
// it. Two pumps (package tlsio) do the blocking reads and writes and post
// their results here. This file holds its life: start (dial, handshake),
// clean close, failure, and the end, where every frame Send took is either
// written or handed back to the owner in connDown. conn_read.go holds the
// read side (frames, the read window, credit), conn_write.go the write side
// (the queue, flow control).

// phase of a connection actor.
type phase uint8

const (
	phaseDialing  phase = iota // client: dialing and handshaking
	phaseOpen                  // reading and writing (server: handshake first)
	phaseDraining              // clean close: flushing, then waiting for the peer
	phaseClosed                // socket closed, waiting for the pumps and the gate
)

// connConfig is how an owner wants its connection actor.
type connConfig struct {
	limits Limits
	owner  *actor.PID
	log    *slog.Logger
	// handshake: run the TLS handshake before reading (server side, or a
	// *tls.Conn given to NewConnection).
	handshake bool
	// handlerCredit: the owner sends each token to a handler PID, which
	// returns Credit for it; a chunk's read credit waits for that too.
	handlerCredit bool
	// dial, if set: dial it first (client side).
	dial *dialTarget
	// supervised: the parent is a supervisor; an end that was not asked for
	// is reported to it with supervisor.Fail, so that it connects again.
	supervised bool
	// stats are the owner's counts (nil: count nothing).
	stats *stats
}

// dialTarget is where a client's connection actor dials.
type dialTarget struct {
	addr string // host:port, or the socket path when unix
	unix bool
	// src gives each dial its TLS configuration (Client.ReloadTLS).
	src  *tlsio.ClientSource
	pool *serverPool // ClientOptions.Servers: addr comes from it
}

// connActor owns one socket. Its fields are its own; what it shares with the
// handle is in Connection.shared.
type connActor struct {
	h    *Connection
	cfg  connConfig
	conn net.Conn
	self *actor.PID

	dec        *wire.Decoder
	reader     *tlsio.ReadPump
	writer     *tlsio.WritePump
	cancelDial context.CancelFunc
	dialed     chan dialDone // the dial's result; dialReady says it is there

	in  readSide
	out writeSide

	phase      phase
	up         bool   // connUp was sent
	failed     bool   // an error event was sent
	asked      bool   // the close was asked for (no reconnect after it)
	cause      string // why the connection ended, for a supervisor
	readerDone bool
	writerDone bool
	finishing  bool
	reported   bool // connDown was sent
	finishPoll timer
	// closeWait bounds the wait for the peer's side after ours is shut: the
	// read deadline does not end a reader that waits for credit.
	closeWait timer
}

// connProps returns the props of a connection actor for h over conn (nil
// when cfg.dial is set).
func connProps(h *Connection, conn net.Conn, cfg connConfig) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return newConnActor(h, conn, cfg) }, actor.WithDispatcher(inline))
}

// dialingConnProps returns the props of a client's connection actor, which
// dials first. Each incarnation (a supervisor restarts them) gets a handle of
// its own.
func dialingConnProps(system *actor.ActorSystem, cfg connConfig) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor {
		return newConnActor(newConnection(system.Root, cfg.limits), nil, cfg.withServer())
	}, actor.WithDispatcher(inline))
}

func newConnActor(h *Connection, conn net.Conn, cfg connConfig) *connActor {
	a := &connActor{h: h, conn: conn, cfg: cfg, out: newWriteSide(cfg.limits)}
	if cfg.dial == nil {
		a.phase = phaseOpen
	}
	return a
}

// Receive handles one message.
func (a *connActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.start(ctx)
	case dialReady:
		a.onDialed(ctx, <-a.dialed)
	case handshakeDone:
		a.h.tls.Store(&m.state)
		a.goUp(ctx)
	case chunkRead:
		a.onChunk(ctx, m.data)
	case readEnded:
		a.onReadEnded(ctx, m.err)
	case framesDone:
		a.onDelivered(ctx, m.frames)
	case *Credit:
		a.onCredit(ctx, m.Tokens)
	case Credit:
		a.onCredit(ctx, m.Tokens)
	case outFrame:
		a.h.shared.queued.Add(-msgOverhead) // the message is out of the mailbox
		a.enqueue(ctx, m.frames, m.tokens)
	case *SendToken:
		a.sendFromMessage(ctx, m.Data)
	case SendToken:
		a.sendFromMessage(ctx, m.Data)
	case chunkWritten:
		a.onWritten(ctx, m.n)
	case writeEnded:
		a.onWriteEnded(ctx, m.err)
	case closeRequest, CloseConnection, *CloseConnection:
		a.asked = true
		a.close(ctx)
	case closeToReconnect:
		a.cause = "remote close"
		a.close(ctx)
	case overCap:
		a.fail(ctx, fmt.Errorf("%w: %w (%d bytes)", ErrSlowConsumer, ErrQueueFull, a.cfg.limits.MaxQueue))
	case forceClose:
		a.fail(ctx, m.err)
	case timerFired:
		switch {
		case a.in.creditWait.fired(m):
			a.drain(ctx) // the handler did not return credit in time
		case a.finishPoll.fired(m):
			a.tryFinish(ctx)
		case a.closeWait.fired(m):
			a.stopReading()
		}
	case finishNow:
		a.finish(ctx)
	case *actor.Stopping:
		a.stopped(ctx)
	}
}

// post returns a function that sends a message to this actor from another
// goroutine (the pumps, the dial).
func (a *connActor) post(ctx actor.Context) func(any) {
	root, self := ctx.ActorSystem().Root, ctx.Self()
	return func(m any) { root.Send(self, m) }
}

func (a *connActor) start(ctx actor.Context) {
	a.self = ctx.Self()
	if a.cfg.dial != nil {
		a.h.pid = a.self // a dialing incarnation made its handle itself
	}
	dec, err := wire.NewDecoder(a.cfg.limits.MaxTokenSize)
	if err != nil { // cannot happen: limits were validated
		panic(err)
	}
	a.dec = dec
	if a.cfg.dial != nil {
		a.startDial(ctx)
		return
	}
	a.startPumps(ctx)
}

func (a *connActor) startDial(ctx actor.Context) {
	a.cfg.stats.connectAttempt()
	dctx, cancel := context.WithCancel(context.Background())
	a.cancelDial = cancel
	a.dialed = make(chan dialDone, 1)
	post, target, dialed := a.post(ctx), a.cfg.dial, a.dialed
	dc := tlsio.DialConfig{HandshakeTimeout: a.cfg.limits.HandshakeTimeout, KeepAlive: a.cfg.limits.KeepAlive}
	dial := tlsio.Dial
	if target.unix {
		dial = tlsio.DialUnix
	}
	go func() {
		conn, err := dial(dctx, target.addr, target.src.Config(), dc)
		// The result waits in the channel, so that an actor stopped meanwhile
		// still finds the socket and closes it.
		dialed <- dialDone{conn, err}
		post(dialReady{})
	}()
}

func (a *connActor) onDialed(ctx actor.Context, m dialDone) {
	a.cancelDial()
	a.cancelDial = nil
	switch {
	case a.asked: // closed while dialing: no news for the user
		if m.conn != nil {
			_ = m.conn.Close()
		}
		a.end(ctx, nil)
	case m.err != nil:
		a.end(ctx, fmt.Errorf("%w: %w", ErrDial, m.err))
	default:
		a.conn = m.conn
		a.h.remote, a.h.local = m.conn.RemoteAddr(), m.conn.LocalAddr()
		st := m.conn.ConnectionState()
		a.h.tls.Store(&st)
		a.phase = phaseOpen
		a.startPumps(ctx)
	}
}

// end finishes a connection that never had pumps (a dial that failed or was
// cancelled).
func (a *connActor) end(ctx actor.Context, err error) {
	a.phase = phaseClosed
	a.readerDone, a.writerDone = true, true
	a.h.shared.gate.close()
	if err != nil {
		a.failed = true
		a.cause = err.Error()
		ctx.Send(a.cfg.owner, connFailed{a.h, err})
	}
	a.maybeFinish(ctx)
}

func (a *connActor) startPumps(ctx actor.Context) {
	post := a.post(ctx)
	a.writer = tlsio.StartWritePump(a.conn, a.cfg.limits.WriteTimeout,
		func(n int) { post(chunkWritten{n}) },
		func(err error) { post(writeEnded{err}) })
	rc := tlsio.ReadConfig{BufferSize: a.cfg.limits.ReadBufferSize, Window: a.cfg.limits.ReadWindow}
	tc, isTLS := a.conn.(*tls.Conn)
	if isTLS && a.cfg.handshake {
		timeout := a.cfg.limits.HandshakeTimeout
		rc.Before = func() error {
			if err := tlsio.Handshake(context.Background(), tc, timeout); err != nil {
				return fmt.Errorf("%w: %w", ErrHandshake, err)
			}
			post(handshakeDone{tc.ConnectionState()})
			return nil
		}
	}
	a.reader = tlsio.StartReadPump(a.conn, rc,
		func(b []byte) { post(chunkRead{b}) },
		func(err error) { post(readEnded{err}) })
	if rc.Before == nil {
		if isTLS && a.h.tls.Load() == nil {
			st := tc.ConnectionState()
			a.h.tls.Store(&st)
		}
		a.goUp(ctx)
	}
}

func (a *connActor) goUp(ctx actor.Context) {
	if a.phase != phaseOpen || a.up {
		return
	}
	a.up = true
	ctx.Send(a.cfg.owner, connUp{a.h})
}

// close starts a clean close.
func (a *connActor) close(ctx actor.Context) {
	switch {
	case a.phase == phaseDialing:
		a.h.shared.gate.close()
		a.cancelDial() // its dialDone ends the actor
	case a.phase == phaseOpen && !a.up:
		a.fail(ctx, nil) // still in its handshake: nothing to flush
	default:
		a.drain(ctx)
	}
}

// drain is the clean close: flush what is queued, shut our side, wait for
// the peer's.
func (a *connActor) drain(ctx actor.Context) {
	if a.phase != phaseOpen {
		return
	}
	a.phase = phaseDraining
	a.in.creditWait.stop()
	a.h.shared.gate.close()
	a.h.shared.wakeWaiters()
	if !a.out.writing {
		a.closeWriter()
	}
}

// shutdownWrite ends our side once everything is written. Over TLS and TCP
// the peer sees our end (close_notify, FIN) and closes its side, which the
// reader sees; that wait is bounded by the close timeout. A conn that cannot
// half-close (net.Pipe, a user's net.Conn) is closed at once.
func (a *connActor) shutdownWrite(ctx actor.Context) {
	if a.readerDone {
		_ = a.conn.Close()
		return
	}
	cw, ok := a.conn.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		_ = a.conn.Close()
		return
	}
	// The deadline ends a reader blocked in Read; the timer also ends one
	// that waits for read credit (a handler that returns none, reading
	// paused), which never reads again to see the peer's end.
	_ = a.conn.SetReadDeadline(time.Now().Add(a.cfg.limits.CloseTimeout))
	a.closeWait.start(ctx, a.cfg.limits.CloseTimeout)
}

// stopReading ends the reader after the close timeout: the peer did not
// close its side in time, or the reader could not see it.
func (a *connActor) stopReading() {
	if a.readerDone {
		return
	}
	a.reader.Stop()
	abortConn(a.conn)
}

// abortConn closes conn at once. A *tls.Conn's Close first sends
// close_notify, with crypto/tls's own 5 s write deadline, from the calling
// goroutine: to a peer that reads nothing (a slow consumer, a peer that does
// not close) that blocks the connection actor for 5 s. After a failure, or a
// peer that did not close in time, there is nothing left to say: the socket
// under the TLS layer is closed instead, and the pumps end on its error.
func abortConn(conn net.Conn) {
	if tc, ok := conn.(*tls.Conn); ok {
		_ = tc.NetConn().Close()
		return
	}
	_ = conn.Close()
}

// fail closes the socket at once. With a non-nil err it reports the error
// event first.
func (a *connActor) fail(ctx actor.Context, err error) {
	if a.phase == phaseClosed {
		return
	}
	if a.phase == phaseDialing {
		a.close(ctx)
		return
	}
	a.phase = phaseClosed
	a.in.creditWait.stop()
	a.h.shared.gate.close()
	a.h.shared.wakeWaiters()
	if err != nil {
		a.failed = true
		if a.cause == "" {
			a.cause = err.Error()
		}
		a.cfg.log.Debug("connection failed", "conn", a.h.id, "remote", a.h.remote, "err", err)
		ctx.Send(a.cfg.owner, connFailed{a.h, err})
	}
	abortConn(a.conn)
	a.reader.Stop()
	a.closeWriter()
	a.out.unsendQueue(a.h.shared)
	a.maybeFinish(ctx)
}

// maybeFinish ends the actor once both pumps have exited.
func (a *connActor) maybeFinish(ctx actor.Context) {
	if !a.readerDone || !a.writerDone || a.finishing {
		return
	}
	a.phase = phaseClosed
	a.finishing = true
	a.closeWait.stop()
	a.h.shared.gate.close()
	a.h.shared.wakeWaiters()
	if a.conn != nil {
		_ = a.conn.Close()
	}
	a.tryFinish(ctx)
}

// tryFinish waits until no Send is inside the gate, so that every frame a
// Send took is in the mailbox ahead of finishNow.
func (a *connActor) tryFinish(ctx actor.Context) {
	if !a.h.shared.gate.empty() {
		a.finishPoll.start(ctx, time.Millisecond)
		return
	}
	ctx.Send(a.self, finishNow{})
}

// finish reports the end to the owner, with the frames that were never
// written, and stops. Under a supervisor, an end that was not asked for is a
// failure: the supervisor connects again.
func (a *connActor) finish(ctx actor.Context) {
	if a.reported {
		return
	}
	a.report(ctx)
	if a.cfg.supervised && !a.asked {
		cause := a.cause
		if cause == "" {
			cause = "connection closed by the server"
		}
		ctx.Send(ctx.Parent(), &supervisor.Fail{Cause: cause})
	}
	ctx.Stop(a.self)
}

func (a *connActor) report(ctx actor.Context) {
	a.reported = true
	maybe, unsent := a.out.takeDropped(a.h.shared)
	ctx.Send(a.cfg.owner, connDown{c: a.h, hadError: a.failed, maybeSent: maybe, unsent: unsent})
}

// stopped: stopped from outside (the owner or the system is stopping). The
// socket goes at once; the owner still learns what was not written.
func (a *connActor) stopped(ctx actor.Context) {
	a.finishPoll.stop()
	a.in.creditWait.stop()
	a.closeWait.stop()
	if a.cancelDial != nil { // dialing: cancel, and close what it made
		a.cancelDial()
		if r := <-a.dialed; r.conn != nil {
			_ = r.conn.Close()
		}
		a.cancelDial = nil
	}
	a.h.shared.gate.close()
	a.h.shared.wakeWaiters()
	if a.conn != nil {
		abortConn(a.conn)
	}
	if a.reader != nil {
		a.reader.Stop()
	}
	if a.writer != nil {
		a.closeWriter()
	}
	if !a.reported {
		a.out.unsendQueue(a.h.shared)
		if a.out.writing { // the writer's batch: written or not, unknown
			a.out.failInFlight(a.h.shared, 0)
		}
		a.report(ctx)
	}
}
