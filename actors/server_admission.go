package actors

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tokenserver/tokenserver/actors/internal/admission"
	"github.com/tokenserver/tokenserver/actors/internal/timer"
	"github.com/tokenserver/tokenserver/tlsio"
)

// serverAdmission is the server actor's side of admission control: the
// bookkeeping is an admission.Book (package actors/internal/admission, whose
// doc has the rules); this carries out what it decides, on sockets and
// connection actors:
//
//   - a socket accepted while its prefix's share is full waits, unread, with
//     no connection actor, until its turn; its handshake timeout runs from
//     accept, so a socket whose turn comes too late is closed as a handshake
//     that timed out;
//   - a connection asks for a handshake slot once the client's hello has
//     arrived (handshakeTLS) and gives it back as soon as the server's
//     flight is written (flightConn);
//   - a socket evicted to make room, or refused because nothing could make
//     room, gets no events: it is counted (Stats.RefusedMaxPending), logged
//     once per burst with the counts, and, where it has not been read yet,
//     answered with a TLS alert (tlsio.RefuseHandshake) rather than a bare
//     end of stream;
//   - authenticated connections count against MaxConnections.
type serverAdmission struct {
	book *admission.Book[*Connection]
	// waiting holds the sockets accepted and not started yet.
	waiting map[*Connection]waitingSocket
	// grants holds the slot requests not answered yet.
	grants map[*Connection]chan bool
	// quiet holds the connections evicted in their handshake: their end
	// gives no events.
	quiet map[*Connection]bool

	// burst: the refusals and evictions since the first of this burst,
	// logged together when its timer fires.
	burst            timer.Timer
	refused, evicted int

	// Refusal handshakes run in goroutines of their own, at most
	// maxRefusals at once, until refusals is cancelled (the actor stops).
	// refusing is a counter: the actor adds, each goroutine subtracts.
	refusals       context.Context
	cancelRefusals context.CancelFunc
	refusing       atomic.Int32
}

// waitingSocket is an accepted socket that waits for its turn.
type waitingSocket struct {
	raw      net.Conn
	accepted time.Time
}

const (
	// burstLogWindow is how long refusals and evictions are gathered into
	// one log line.
	burstLogWindow = time.Second
	// maxRefusals bounds the goroutines answering refused sockets with an
	// alert; past it a refused socket is closed bare.
	maxRefusals = 64
	// refusalWait bounds how long a refused socket's hello is waited for.
	refusalWait = time.Second
)

// errEvicted closes a connection evicted in its handshake (it is not
// reported: see serverAdmission).
var errEvicted = fmt.Errorf("%w: evicted, silent, to make room for a newcomer (MaxPending)", ErrTooManyPending)

// slotRequest asks the server actor for a handshake slot: grant receives
// true when the slot is given, false when it never will be.
type slotRequest struct {
	c     *Connection
	grant chan bool
}

// slotDone gives a handshake slot back: the server's flight is written.
type slotDone struct{ c *Connection }

func newServerAdmission(o ServerOptions) *serverAdmission {
	ctx, cancel := context.WithCancel(context.Background())
	return &serverAdmission{
		book: admission.New[*Connection](admission.Config{
			MaxConns: o.MaxConnections, MaxPending: o.MaxPending, MaxPerPrefix: o.MaxPendingPerAddr,
			MaxHandshakes: o.MaxHandshakes,
		}),
		waiting: map[*Connection]waitingSocket{}, grants: map[*Connection]chan bool{},
		quiet: map[*Connection]bool{}, refusals: ctx, cancelRefusals: cancel,
	}
}

// admitSocket takes h, a socket just accepted over raw, into the admission
// queue: its handshake starts now, or when its turn comes.
func (a *serverActor) admitSocket(ctx actor.Context, h *Connection, raw net.Conn) {
	a.admit.waiting[h] = waitingSocket{raw: raw, accepted: time.Now()}
	a.applyAdmission(ctx, a.admit.book.Arrive(h, admission.PrefixOf(h.RemoteAddr())))
}

// onHello: c's client hello has arrived; it asks for a handshake slot.
func (a *serverActor) onHello(ctx actor.Context, m slotRequest) {
	a.admit.grants[m.c] = m.grant
	a.applyAdmission(ctx, a.admit.book.Hello(m.c))
}

// onFlightDone: c's server flight is written; its slot passes on.
func (a *serverActor) onFlightDone(ctx actor.Context, c *Connection) {
	a.applyAdmission(ctx, a.admit.book.FlightDone(c))
}

// admitLive moves c, whose handshake is done, from the pending sockets to
// the authenticated connections, or says why not.
func (a *serverActor) admitLive(ctx actor.Context, c *Connection) error {
	ok, effects := a.admit.book.Up(c)
	a.applyAdmission(ctx, effects)
	if !ok {
		return fmt.Errorf("%w (%d)", ErrTooManyConnections, a.opts.MaxConnections)
	}
	return nil
}

// admissionGone forgets c, which closed (live: admitLive counted it). quiet
// says that c was evicted in its handshake, and its end gives no events.
func (a *serverActor) admissionGone(ctx actor.Context, c *Connection, live bool) (quiet bool) {
	quiet = a.admit.quiet[c]
	delete(a.admit.quiet, c)
	a.applyAdmission(ctx, a.admit.book.Leave(c, live))
	return quiet
}

// evictedQuietly reports whether c was evicted in its handshake: its error
// gives no event.
func (a *serverActor) evictedQuietly(c *Connection) bool { return a.admit.quiet[c] }

// dropWaiting closes every socket that waits for its turn: the server
// stops listening, and they go as the listen backlog does, without events.
func (a *serverActor) dropWaiting() {
	for _, h := range a.admit.book.DropWaiting() {
		_ = a.admit.waiting[h].raw.Close()
		delete(a.admit.waiting, h)
	}
}

// stopAdmission: the server actor stops; refusals in progress end.
func (a *serverActor) stopAdmission() {
	a.dropWaiting()
	a.admit.burst.Stop()
	a.admit.cancelRefusals()
}

// admissionTimer handles m if it is the burst log's timer.
func (a *serverActor) admissionTimer(m timer.Fired) bool {
	if !a.admit.burst.Accept(m) {
		return false
	}
	ad := a.admit
	a.log.Warn("sockets in their TLS handshake: the pending queue was full; silent ones evicted, others refused",
		"evicted", ad.evicted, "refused", ad.refused, "within", burstLogWindow, "MaxPending", a.opts.MaxPending)
	ad.evicted, ad.refused = 0, 0
	return true
}

// applyAdmission carries out the effects of one admission event, and of the
// events they cause, in order.
func (a *serverActor) applyAdmission(ctx actor.Context, effects []admission.Effect[*Connection]) {
	ad := a.admit
	for len(effects) > 0 {
		e := effects[0]
		effects = effects[1:]
		switch e.Kind {
		case admission.Start:
			w := ad.waiting[e.Key]
			delete(ad.waiting, e.Key)
			left := a.limits.HandshakeTimeout - time.Since(w.accepted)
			if left <= 0 {
				effects = append(effects, a.expireWaiting(ctx, e.Key, w)...)
				continue
			}
			a.startHandshake(ctx, e.Key, w.raw, left)
		case admission.Grant, admission.Deny:
			if grant, ok := ad.grants[e.Key]; ok {
				delete(ad.grants, e.Key)
				grant <- e.Kind == admission.Grant
			}
		case admission.Evict:
			ad.evicted++
			a.shutOut(ctx, e.Key)
			if e.Started {
				ad.quiet[e.Key] = true
				ctx.Send(e.Key.PID(), forceClose{errEvicted})
			}
		case admission.Refuse:
			ad.refused++
			a.shutOut(ctx, e.Key)
		}
	}
}

// shutOut counts a socket evicted or refused at MaxPending, notes it for
// the burst's log line and, if it was never read, answers its hello with an
// alert.
func (a *serverActor) shutOut(ctx actor.Context, h *Connection) {
	ad := a.admit
	a.s.stats.refusedPend.Add(1)
	if !ad.burst.Running() {
		ad.burst.Start(ctx, burstLogWindow)
	}
	w, unread := ad.waiting[h]
	if !unread {
		return
	}
	delete(ad.waiting, h)
	h.shared.gate.close()
	if ad.refusing.Load() >= maxRefusals {
		_ = w.raw.Close()
		return
	}
	ad.refusing.Add(1)
	go func() {
		defer ad.refusing.Add(-1)
		_ = tlsio.RefuseHandshake(ad.refusals, w.raw, min(refusalWait, a.limits.HandshakeTimeout))
	}()
}

// expireWaiting closes h, whose handshake timeout ran out while it waited
// for its turn, as a handshake that did not finish in time.
func (a *serverActor) expireWaiting(ctx actor.Context, h *Connection, w waitingSocket) []admission.Effect[*Connection] {
	_ = w.raw.Close()
	h.shared.gate.close()
	err := fmt.Errorf("%w: %w after %v, waiting for its turn (MaxPendingPerAddr): %w",
		ErrHandshake, tlsio.ErrHandshakeTimeout, a.limits.HandshakeTimeout, context.DeadlineExceeded)
	a.ev.emit(ctx, errorEvent(h, err), h, err)
	a.ev.emit(ctx, closedEvent(h, true), h, nil)
	return a.admit.book.Leave(h, false)
}

// handshakeTLS returns the TLS configuration of one accepted connection: the
// server's, with a hook that asks the server actor for a handshake slot once
// the client's hello has arrived.
func handshakeTLS(base *tls.Config, root *actor.RootContext, server *actor.PID, c *Connection) *tls.Config {
	cfg := base.Clone()
	user := base.GetConfigForClient
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		grant := make(chan bool, 1)
		root.Send(server, slotRequest{c, grant})
		select {
		case ok := <-grant:
			if !ok {
				return nil, errNoSlot
			}
		case <-hello.Context().Done():
			return nil, fmt.Errorf("waiting for a handshake slot: %w", hello.Context().Err())
		}
		c, err := cfg, error(nil)
		if user != nil {
			if c, err = user(hello); err != nil || c == nil {
				return c, err
			}
		}
		if len(hello.SupportedProtos) > 0 && !slices.ContainsFunc(hello.SupportedProtos, func(p string) bool {
			return slices.Contains(c.NextProtos, p)
		}) {
			// A client that offers only protocols we do not know speaks
			// token/1 without ALPN, as with the Node original, rather than
			// fail with crypto/tls's no_application_protocol alert.
			c = c.Clone()
			c.NextProtos = nil
			c.GetConfigForClient = nil
			return c, nil
		}
		if user == nil {
			return nil, nil
		}
		return c, nil
	}
	return cfg
}

// errNoSlot: a connection asked for a handshake slot after it was evicted or
// closed.
var errNoSlot = errors.New("no handshake slot: the connection was closed")

// flightConn wraps an accepted socket during its handshake: the first read
// after a write means the server's flight is out and it waits for the
// client, so the handshake slot can go to another connection.
type flightConn struct {
	net.Conn
	wrote, done atomic.Bool
	onFlight    func()
}

// Write marks that the server's flight has begun.
func (f *flightConn) Write(b []byte) (int, error) {
	if !f.done.Load() {
		f.wrote.Store(true)
	}
	return f.Conn.Write(b)
}

// Read gives the slot back on the first read after a write.
func (f *flightConn) Read(b []byte) (int, error) {
	if !f.done.Load() && f.wrote.Load() {
		f.done.Store(true)
		f.onFlight()
	}
	return f.Conn.Read(b)
}

// SyscallConn is the socket's, so that the write pump can ask the kernel
// about its send queue (tlsio.WritePump.WriteNow).
func (f *flightConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := f.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.ErrUnsupported
}
