package actors

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tokenserver/tokenserver/actors/internal/dispatch"
	"github.com/tokenserver/tokenserver/actors/internal/serverlist"
	"github.com/tokenserver/tokenserver/actors/internal/timer"
	"github.com/tokenserver/tokenserver/tlsio"
	"github.com/tokenserver/tokenserver/wire"
)

// The connection actor owns one socket: nothing else reads, writes or closes
// it. Two pumps (package tlsio) do the blocking reads and writes and post
// their results here. This file holds its start (dial, handshake, protocol)
// and its messages; conn_end.go its end, where every frame Send took is
// either written or handed back to the owner in connDown; conn_read.go the
// read side (frames, the read window, credit); conn_write.go the write side
// (the queue, flow control).

// phase of a connection actor. It only moves forward, but for a server's
// token/2 session, which goes from phaseSuspended back to phaseOpen when its
// client comes back.
type phase uint8

const (
	// phaseDialing: a client's actor dials (and handshakes); no socket yet.
	phaseDialing phase = iota
	// phaseHandshaking: the read pump does the TLS handshake first; the
	// protocol is not known yet, nothing is written.
	phaseHandshaking
	// phaseGreeting: token/2 on a server: the client's HELLO was read, the
	// owner decides what becomes of it (sessionDecision); nothing is
	// written, nothing more read.
	phaseGreeting
	// phaseOpen: reading and writing; the owner has had connUp.
	phaseOpen
	// phaseSuspended: a server's token/2 session whose socket broke: no
	// socket (or its pumps are ending), Send still takes tokens, and the
	// next socket of its client brings it back to phaseOpen (the one step
	// back), or the owner ends it.
	phaseSuspended
	// phaseDraining: the clean close: the gate is closed, what is queued
	// is written, then our side is shut and the peer's end awaited.
	phaseDraining
	// phaseClosing: the gate is closed and the socket aborted; waiting for
	// the pumps (and the dial) to end.
	phaseClosing
	// phaseDone: connDown was sent; the actor stops.
	phaseDone
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
	// lend: the owner's callbacks borrow the tokens (LendTokens): a chunk
	// that tokens lie in is read into again once the owner is done with it.
	lend bool
	// dial, if set: dial it first (client side).
	dial *dialTarget
	// supervised: the parent is a supervisor; an end that was not asked for
	// is reported to it with supervisor.Fail, so that it connects again.
	supervised bool
	// stats are the owner's counts (nil: count nothing).
	stats *stats
	// sessions: the owner keeps token/2 sessions (a server or a client);
	// nil: token/1 only (a standalone connection).
	sessions *sessionConfig
	// budget: a server's memory budget for unfinished frames
	// (server_budget.go); nil: none.
	budget *budgetConfig
	// ownerPool is the pool the owner's mailbox runs on: the read pump
	// offers itself to it around each chunk it posts (dispatch.Helper), so
	// that the owner the chunk's tokens wake runs on the read pump rather
	// than on a worker woken for it. nil: no offer.
	ownerPool *dispatch.WorkerPool
}

// dialTarget is where a client's connection actor dials.
type dialTarget struct {
	addr string // host:port, or the socket path when unix
	unix bool
	// src gives each dial its TLS configuration (Client.ReloadTLS).
	src *tlsio.ClientSource
	// protocols are offered by ALPN.
	protocols []string
	list      *serverlist.List // ClientOptions.Servers: addr comes from it
}

// withServer returns cfg for one connect attempt: with a server list, its
// dial target is the list's next server.
func (cfg connConfig) withServer() connConfig {
	if cfg.dial != nil && cfg.dial.list != nil {
		d := *cfg.dial
		d.addr = d.list.Next()
		cfg.dial = &d
	}
	return cfg
}

// connActor owns one socket. Its fields are its own; what it shares with the
// handle is in Connection.shared (see the package doc).
type connActor struct {
	h    *Connection
	cfg  connConfig
	conn net.Conn
	self *actor.PID

	phase phase
	codec wire.Codec        // the protocol; nil until the handshake is done
	dec   wire.FrameDecoder // the codec's, for what we read

	// Each runs until its end is handled here, then is nil.
	reader     *tlsio.ReadPump
	writer     frameWriter        // the write pump, then the shut of our side
	cancelDial context.CancelFunc // the dial
	dialed     chan dialDone      // the dial's result; dialReady says it is there

	in  readSide
	out writeSide
	// ownerHere: the read pump runs the owner's mailbox now (startReader),
	// so a batch the owner's Send gives this actor meanwhile may be written
	// at once, on that pump (WritePump.WriteNow), instead of handed to the
	// write pump: a round trip without a hand-off. Written by the read
	// pump, read by the actor.
	ownerHere atomic.Bool

	// token/2 (conn_session.go): the session, nil for token/1.
	sess *connSession
	// A server's greeting: the read pump waits on greet for the owner's
	// decision on hello; handTo is the actor its socket goes to.
	greet      chan error
	hello      wire.Hello
	handTo     *actor.PID
	handedOver bool
	// A client's session as its owner gave it, until the dial is done.
	given *sessionState

	end ending
	// closeWait bounds the wait for the peer's side after ours is shut: the
	// read deadline does not end a reader that waits for credit.
	closeWait timer.Timer
}

// connProps returns the props of a connection actor for h over conn (nil
// when cfg.dial is set). The props hand conn to the first incarnation only:
// Proto.Actor keeps the props, and with them their producer, for the
// actor's life, and a token/2 session that waits for its client would keep
// its broken socket alive with it (its TLS buffers and cipher state, about
// 6 KiB). An incarnation after a panic gets no socket and ends
// (errRestarted).
func connProps(h *Connection, conn net.Conn, cfg connConfig) *actor.Props {
	seed := &conn
	return actor.PropsFromProducer(func() actor.Actor {
		c := *seed
		*seed = nil
		return newConnActor(h, c, cfg)
	}, actor.WithDispatcher(dispatch.Inline))
}

// errRestarted ends a connection actor started again after a panic: its
// socket went with the incarnation that panicked.
var errRestarted = fmt.Errorf("%w: connection actor restarted after a panic", ErrConnection)

// dialingConnProps returns the props of a client's connection actor, which
// dials first. Each incarnation (a supervisor restarts them) gets a handle of
// its own.
func dialingConnProps(system *actor.ActorSystem, cfg connConfig) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor {
		return newConnActor(newConnection(system.Root, cfg.limits), nil, cfg.withServer())
	}, actor.WithDispatcher(dispatch.Inline))
}

func newConnActor(h *Connection, conn net.Conn, cfg connConfig) *connActor {
	return &connActor{h: h, conn: conn, cfg: cfg, out: newWriteSide(cfg.limits)}
}

// Receive handles one message.
func (a *connActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.start(ctx)
	case dialReady:
		a.onDialed(ctx, <-a.dialed)
	case handshakeDone:
		a.onHandshake(ctx, m)
	case sessionGiven:
		a.given = m.state
		a.startDial(ctx)
	case sessionDecision:
		a.onDecision(ctx, m)
	case adopt:
		a.onAdopt(ctx, m)
	case supersede:
		if a.phase == phaseOpen && a.sess != nil {
			a.breakSession(ctx, errSuperseded)
		}
	case sessionEnd:
		a.onSessionEnd(ctx, m.err)
	case memoryGrant:
		a.onGrant(ctx, m.bytes)
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
	case sendsWaiting:
		a.takeSends(ctx)
	case *SendToken:
		a.sendFromMessage(ctx, m.Data)
	case SendToken:
		a.sendFromMessage(ctx, m.Data)
	case chunkWritten:
		a.onWritten(ctx, m.n)
	case pieceReady:
		a.onPieceReady(ctx, m)
	case writeEnded:
		a.onWriteEnded(ctx, m.err)
	case writeShut:
		a.onWriteShut(ctx, m.err)
	case closeRequest, CloseConnection, *CloseConnection:
		if a.phase == phaseSuspended {
			a.waitOver(ctx, nil)
			return
		}
		a.end.asked = true
		a.close(ctx)
	case closeToReconnect:
		a.end.cause = "remote close"
		a.close(ctx)
	case overCap:
		if a.phase == phaseSuspended {
			a.waitOver(ctx, errQueueFull(a.h.shared.max))
			return
		}
		a.die(ctx, errQueueFull(a.h.shared.max))
	case forceClose:
		a.die(ctx, m.err)
	case timer.Fired:
		switch {
		case a.in.creditWait.Accept(m):
			a.drain(ctx) // the handler did not return credit in time
		case a.closeWait.Accept(m):
			a.stopReading()
		case a.sess != nil && a.sess.ackTimer.Accept(m):
			a.onAckTimer(ctx)
		case a.sess != nil && a.sess.endWait.Accept(m):
			a.onEndWait(ctx)
		case a.sess != nil && a.sess.expiry.Accept(m):
			a.onSessionTimer(ctx)
		case a.in.budgetWait.Accept(m):
			a.onBudgetWait(ctx)
		}
	case *actor.Stopping:
		a.stopped(ctx)
	case *actor.Restarting:
		// Proto.Actor starts this actor again after a panic, and the next
		// incarnation ends at once (errRestarted): this one lets its socket,
		// its pumps and its dial go, or they would outlive it.
		a.dropIO()
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
		a.phase = phaseDialing
		if a.cfg.sessions != nil {
			// The HELLO needs the session: the owner has it.
			ctx.Send(a.cfg.owner, sessionWanted{a.h})
			return
		}
		a.startDial(ctx)
		return
	}
	if a.conn == nil {
		a.die(ctx, errRestarted)
		return
	}
	a.startPumps(ctx)
}

func (a *connActor) startDial(ctx actor.Context) {
	if a.phase != phaseDialing || a.cancelDial != nil {
		return // closed before the session came
	}
	a.cfg.stats.connectAttempt()
	dctx, cancel := context.WithCancel(context.Background())
	a.cancelDial = cancel
	a.dialed = make(chan dialDone, 1)
	post, target, dialed := a.post(ctx), a.cfg.dial, a.dialed
	timeout := a.cfg.limits.HandshakeTimeout
	dc := tlsio.DialConfig{HandshakeTimeout: timeout, KeepAlive: a.cfg.limits.KeepAlive}
	var hello *wire.Hello
	if a.given != nil {
		h := a.given.hello()
		hello = &h
	}
	dial := tlsio.Dial
	if target.unix {
		dial = tlsio.DialUnix
	}
	go func() {
		cfg := target.src.Config()
		cfg.NextProtos = target.protocols
		conn, err := dial(dctx, target.addr, cfg, dc)
		var codec wire.Codec
		var welcome wire.Welcome
		if err == nil {
			codec, err = negotiate(conn)
			if err == nil && codec == wire.Token2 {
				if hello == nil {
					err = fmt.Errorf("%w: the server chose token/2, which this connection did not offer", ErrProtocol)
				} else {
					welcome, err = greetClient(dctx, conn, *hello, timeout)
				}
			}
			if err != nil {
				_ = conn.Close()
				conn = nil
			}
		}
		// The result waits in the channel, so that an actor stopped meanwhile
		// still finds the socket and closes it.
		dialed <- dialDone{conn, codec, welcome, err}
		post(dialReady{})
	}()
}

func (a *connActor) onDialed(ctx actor.Context, m dialDone) {
	a.cancelDial()
	a.cancelDial = nil
	switch {
	case a.phase != phaseDialing: // closed while dialing: no news for the user
		if m.conn != nil {
			_ = m.conn.Close()
		}
		a.finish(ctx)
	case m.err != nil:
		a.die(ctx, fmt.Errorf("%w: %w", ErrDial, m.err))
	default:
		a.conn = m.conn
		a.h.setAddrs(m.conn)
		st := m.conn.ConnectionState()
		a.h.tls.Store(&st)
		var resend []byte
		if m.codec == wire.Token2 {
			a.sess, resend = clientSession(a.given, m.welcome)
			if a.sess.nextSeq <= a.given.last { // written before: sent again
				a.cfg.stats.resent(int(a.given.last - a.sess.nextSeq + 1))
			}
			a.given = nil
		} else if a.given != nil && len(a.given.frames) > 0 {
			// A token/1 server (the Node original in the server list):
			// the tokens the last token/2 one did not acknowledge go as
			// token/1 frames; the session goes back to the owner at the
			// end, for a token/2 server after this one.
			toks := decodeTokens(wire.Token2, a.given.frames)
			for _, t := range toks {
				resend = wire.Token1.AppendToken(resend, t)
			}
			a.given.first += uint64(len(toks))
			a.given.frames, a.given.tokens = nil, 0
		}
		a.startPumps(ctx)
		a.open(ctx, m.codec, resend)
	}
}

// startPumps starts the write pump and the read pump, which does the TLS
// handshake first when the connection is to (phaseHandshaking). A
// connection without a handshake of ours is open at once: a TLS one speaks
// what its own handshake negotiated (token/1 if it has not run), any other
// token/1.
func (a *connActor) startPumps(ctx actor.Context) {
	tc, isTLS := a.conn.(*tls.Conn)
	var before func() error
	if isTLS && a.cfg.handshake {
		post := a.post(ctx)
		timeout := a.cfg.limits.HandshakeTimeout
		greet := a.cfg.sessions != nil && a.cfg.sessions.server
		var decide chan error
		if greet {
			decide = make(chan error, 1)
			a.greet = decide
		}
		before = func() error {
			deadline := time.Now().Add(timeout)
			if err := tlsio.Handshake(context.Background(), tc, timeout); err != nil {
				return fmt.Errorf("%w: %w", ErrHandshake, err)
			}
			codec, err := negotiate(tc)
			if err != nil {
				return fmt.Errorf("%w: %w", ErrHandshake, err)
			}
			st := tc.ConnectionState()
			if codec == wire.Token2 && greet {
				return greetServer(tc, deadline, post, st, codec, decide)
			}
			post(handshakeDone{state: st, codec: codec})
			return nil
		}
	}
	a.startReader(ctx, before)
	switch {
	case before != nil:
		a.phase = phaseHandshaking
	case a.cfg.dial != nil: // dialed: onDialed opens it
	default:
		codec := wire.Token1
		if isTLS {
			st := tc.ConnectionState()
			a.h.tls.Store(&st)
			codec = codecFor(st.NegotiatedProtocol)
			if codec == wire.Token2 && a.cfg.sessions == nil {
				codec = wire.Token1 // token/2 needs a Server or a Client
			}
		}
		a.open(ctx, codec, nil)
	}
}

// startReader starts the read pump, which runs before first (the TLS
// handshake) when it is given.
func (a *connActor) startReader(ctx actor.Context, before func() error) {
	post := a.post(ctx)
	rc := tlsio.ReadConfig{BufferSize: a.cfg.limits.ReadBufferSize, Window: a.cfg.limits.ReadWindow, Before: before}
	onChunk := func(b []byte) { post(chunkRead{b}) }
	if pool := a.cfg.ownerPool; pool != nil {
		h := new(dispatch.Helper) // the read pump's own
		onChunk = func(b []byte) {
			offered := pool.Offer(h)
			post(chunkRead{b})
			if offered {
				if run := pool.Take(h); run != nil {
					// The owner's mailbox, here: no worker woken. What
					// it sends back on this connection is written here
					// too, when that cannot block (ownerHere).
					a.ownerHere.Store(true)
					run()
					a.ownerHere.Store(false)
				}
			}
		}
	}
	a.reader = tlsio.StartReadPump(a.conn, rc, onChunk,
		func(err error) { post(readEnded{err}) })
}

// startWriter starts the write pump: once the protocol is known, since
// nothing is written before.
func (a *connActor) startWriter(ctx actor.Context) {
	if a.writer != nil {
		return
	}
	post := a.post(ctx)
	a.writer = tlsio.StartWritePump(a.conn, a.cfg.limits.WriteTimeout,
		func(n int) { post(chunkWritten{n}) },
		func(err error) { post(writeEnded{err}) })
}

func (a *connActor) onHandshake(ctx actor.Context, m handshakeDone) {
	a.h.tls.Store(&m.state)
	if a.phase != phaseHandshaking { // it ended in its handshake: no protocol
		a.decide(errHandedOver)
		return
	}
	if m.hello != nil {
		a.onHello(ctx, m)
		return
	}
	a.open(ctx, m.codec, nil)
}

// negotiate picks the protocol of a connection whose TLS handshake is done,
// from the ALPN protocol negotiated, on the goroutine that did the
// handshake (the dial's, or the read pump's before it reads): a protocol's
// own greeting (token/2's hello and welcome) runs here, before any frame is
// read or written.
func negotiate(tc *tls.Conn) (wire.Codec, error) {
	return codecFor(tc.ConnectionState().NegotiatedProtocol), nil
}

// codecFor is wire.CodecFor; the tests give it a protocol of their own.
var codecFor = wire.CodecFor

// open makes the connection live with its protocol: its decoder, the
// encoding of Send, a client's frames to send again (resend, those its
// session's last connection did not have acknowledged), connUp for the
// owner, and the frames sent before it was known (they waited on the sends
// stack). The frames to send again are queued before connUp: the owner
// publishes the connection to Send when it gets connUp (a client flushes
// its reconnect buffer into it at once, on its own goroutine), and a token
// Send takes then is newer than them.
func (a *connActor) open(ctx actor.Context, c wire.Codec, resend []byte) {
	dec, err := c.NewDecoder(a.cfg.limits.MaxTokenSize)
	if err != nil { // cannot happen: limits were validated
		panic(err)
	}
	a.codec, a.dec = c, dec
	a.lendSpans()
	a.h.protocol.Store(&c)
	if a.sess != nil {
		id := hex.EncodeToString(a.sess.id[:])
		a.h.session.Store(&id)
	}
	a.phase = phaseOpen
	a.startWriter(ctx)
	if a.sess != nil && a.sess.server {
		a.writeGreeting(ctx, wire.Welcome{Status: wire.SessionNew, Recv: a.sess.recv}, nil, 0)
	}
	if len(resend) > 0 {
		a.resendGiven(ctx, resend)
	}
	ctx.Send(a.cfg.owner, connUp{a.h})
	a.takeSends(ctx)
}

// resendGiven queues the frames a client's session had not had acknowledged
// over its last connection, ahead of what Send takes from now on. They were
// counted in the client's buffer; now they count in this queue.
func (a *connActor) resendGiven(ctx actor.Context, frames []byte) {
	a.h.shared.queued.Add(int64(len(frames)))
	_, tokens := a.codec.WholeFrames(frames)
	a.enqueue(ctx, frames, tokens)
}
