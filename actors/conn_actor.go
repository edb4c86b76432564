package actors

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tokenserver/tokenserver/tlsio"
	"github.com/tokenserver/tokenserver/wire"
)

// phase of a connection actor.
type phase uint8

const (
	phaseOpen     phase = iota // reading and writing
	phaseDraining              // clean close: flushing, then waiting for the peer
	phaseClosed                // socket closed, waiting for the pumps to exit
)

// connActor owns one socket. Only it and its two pumps touch the socket.
type connActor struct {
	h         *Connection
	conn      net.Conn
	handshake bool // run the TLS handshake before reading (server side)
	limits    Limits
	owner     *actor.PID
	log       *slog.Logger

	self   *actor.PID
	dec    *wire.Decoder
	reader *tlsio.ReadPump
	writer *tlsio.WritePump

	writing      bool     // a buffer is with the writer
	writerClosed bool     // the writer takes nothing more
	out          outbox   // frames queued while the writer is busy
	inFlight     [][]byte // the batch the writer has
	inFlightSize int

	delivering int  // batches handed to the owner and not yet delivered
	peerClosed bool // the peer shut its side; drain once delivering is 0

	phase      phase
	up         bool
	failed     bool
	readerDone bool
	writerDone bool
}

// connProps returns the props of a connection actor for conn, reporting to
// owner. The decoder limit was validated with the options.
func connProps(h *Connection, conn net.Conn, handshake bool, limits Limits, owner *actor.PID, log *slog.Logger) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor {
		return &connActor{h: h, conn: conn, handshake: handshake, limits: limits, owner: owner, log: log, out: newOutbox()}
	})
}

// Receive handles one message.
func (a *connActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.start(ctx)
	case handshakeDone:
		a.h.tls.Store(&m.state)
		a.goUp(ctx)
	case chunkRead:
		a.onChunk(ctx, m.data)
	case framesDone:
		a.delivering--
		a.reader.Release()
		if a.peerClosed && a.delivering == 0 {
			a.drain(ctx)
		}
	case readEnded:
		a.onReadEnded(ctx, m.err)
	case outFrame:
		a.h.shared.queued.Add(-msgOverhead) // the message is out of the mailbox
		a.enqueue(ctx, m)
	case SendToken:
		a.sendFromMessage(ctx, m.Data)
	case *SendToken:
		a.sendFromMessage(ctx, m.Data)
	case chunkWritten:
		a.onWritten(ctx, m.n)
	case writeEnded:
		a.onWriteEnded(ctx, m.err)
	case closeRequest, CloseConnection, *CloseConnection:
		a.h.shared.dead.Store(true)
		a.drain(ctx)
	case queueFull:
		a.fail(ctx, fmt.Errorf("%w (%d bytes)", ErrQueueFull, a.limits.HighWaterMark))
	case forceClose:
		a.fail(ctx, m.err)
	case *actor.Stopping:
		// Stopped from outside (the owner is stopping): drop the socket.
		if a.phase != phaseClosed {
			a.phase = phaseClosed
			a.h.shared.dead.Store(true)
			_ = a.conn.Close()
		}
	}
}

func (a *connActor) start(ctx actor.Context) {
	a.self = ctx.Self()
	dec, err := wire.NewDecoder(a.limits.MaxTokenSize)
	if err != nil { // cannot happen: limits were validated
		panic(err)
	}
	a.dec = dec
	root, self := ctx.ActorSystem().Root, a.self
	post := func(m any) { root.Send(self, m) }
	a.writer = tlsio.StartWritePump(a.conn, a.limits.WriteTimeout,
		func(n int) { post(chunkWritten{n}) },
		func(err error) { post(writeEnded{err}) })
	cfg := tlsio.ReadConfig{BufferSize: a.limits.ReadBufferSize, Window: a.limits.ReadWindow}
	if tc, ok := a.conn.(*tls.Conn); ok && a.handshake {
		timeout := a.limits.HandshakeTimeout
		cfg.Before = func() error {
			if err := tlsio.Handshake(context.Background(), tc, timeout); err != nil {
				return fmt.Errorf("%w: %w", ErrHandshake, err)
			}
			post(handshakeDone{tc.ConnectionState()})
			return nil
		}
	}
	a.reader = tlsio.StartReadPump(a.conn, cfg,
		func(b []byte) { post(chunkRead{b}) },
		func(err error) { post(readEnded{err}) })
	if cfg.Before == nil {
		if tc, ok := a.conn.(*tls.Conn); ok {
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
	ctx.Send(a.owner, connUp{a.h})
}

func (a *connActor) onChunk(ctx actor.Context, data []byte) {
	if a.phase == phaseClosed {
		return
	}
	frames, err := a.dec.AppendFrames(nil, data)
	if len(frames) > 0 {
		a.delivering++
		ctx.Send(a.owner, connFrames{a.h, frames})
	} else {
		a.reader.Release()
	}
	if err != nil {
		a.fail(ctx, fmt.Errorf("%w: %w", ErrProtocol, err))
	}
}

func (a *connActor) onReadEnded(ctx actor.Context, err error) {
	a.readerDone = true
	switch {
	case a.phase == phaseOpen && errors.Is(err, ErrHandshake):
		// A handshake cut short by the peer ends in EOF too: still an error.
		a.fail(ctx, err)
	case a.phase == phaseOpen && errors.Is(err, io.EOF) && a.dec.Buffered() > 0:
		// The peer closed in the middle of a frame: that token is lost.
		a.fail(ctx, fmt.Errorf("%w: connection closed inside a frame (%d bytes): %w",
			ErrProtocol, a.dec.Buffered(), io.ErrUnexpectedEOF))
	case a.phase == phaseOpen && (err == nil || errors.Is(err, io.EOF)):
		// The peer closed its side: as Node does (allowHalfOpen false), we
		// finish writing and close ours, once the owner has delivered every
		// token read, so that replies to them still go out.
		a.peerClosed = true
		if a.delivering == 0 {
			a.drain(ctx)
		}
	case a.phase == phaseOpen:
		a.fail(ctx, fmt.Errorf("%w: read: %w", ErrConnection, err))
	default:
		a.maybeFinish(ctx)
	}
}

// sendFromMessage handles SendToken from an actor: the same as Send on the
// handle, counted here.
func (a *connActor) sendFromMessage(ctx actor.Context, token []byte) {
	if a.phase != phaseOpen || a.h.shared.dead.Load() {
		return
	}
	frame := wire.AppendToken(nil, token)
	if !a.h.reserve(len(frame)) {
		return
	}
	a.h.shared.queued.Add(-msgOverhead) // no message waits: it is this one
	a.enqueue(ctx, frame)
}

func (a *connActor) enqueue(ctx actor.Context, frame []byte) {
	if a.phase == phaseClosed || a.writerClosed {
		// Send saw the connection alive, but it closed meanwhile.
		a.unsent(ctx, frame)
		return
	}
	if !a.writing {
		a.handToWriter([][]byte{frame}, len(frame))
		return
	}
	a.out.push(frame)
}

func (a *connActor) handToWriter(batch [][]byte, size int) {
	a.writing = true
	a.inFlight, a.inFlightSize = batch, size
	a.writer.Write(batch...)
}

func (a *connActor) onWritten(ctx actor.Context, n int) {
	a.h.shared.queued.Add(-int64(n))
	a.writing = false
	release(a.inFlight)
	a.inFlight, a.inFlightSize = nil, 0
	if a.phase == phaseClosed {
		return
	}
	if !a.out.empty() {
		size := a.out.size
		a.handToWriter(a.out.take(), size)
		return
	}
	if a.phase == phaseDraining {
		a.closeWriter()
	}
}

func (a *connActor) closeWriter() {
	a.writerClosed = true
	a.writer.Close()
}

// unsent hands frames that will never be written back to the owner, which
// knows what to do with them (the client buffers or reports them).
func (a *connActor) unsent(ctx actor.Context, frames []byte) {
	if len(frames) == 0 {
		return
	}
	a.h.shared.queued.Add(-int64(len(frames)))
	ctx.Send(a.owner, connUnsent{a.h, frames})
}

func (a *connActor) onWriteEnded(ctx actor.Context, err error) {
	a.writerDone = true
	if a.writing { // what the writer had may be partly written: unknown
		a.h.shared.queued.Add(-int64(a.inFlightSize))
		a.writing, a.inFlight, a.inFlightSize = false, nil, 0
	}
	a.unsent(ctx, a.out.flatten())
	if err != nil && a.phase != phaseClosed {
		if !errors.Is(err, tlsio.ErrWriteTimeout) {
			err = fmt.Errorf("%w: %w", ErrConnection, err)
		}
		a.fail(ctx, err)
		return
	}
	if a.phase == phaseDraining {
		a.shutdownWrite()
	}
	a.maybeFinish(ctx)
}

// drain starts a clean close: flush what is queued, shut our side, wait for
// the peer's.
func (a *connActor) drain(ctx actor.Context) {
	if a.phase != phaseOpen {
		return
	}
	a.phase = phaseDraining
	a.h.shared.dead.Store(true)
	if !a.up {
		a.fail(ctx, nil)
		return
	}
	if !a.writing {
		a.closeWriter()
	}
}

// shutdownWrite ends our side once everything is written, and bounds the wait
// for the peer's side with the close timeout.
func (a *connActor) shutdownWrite() {
	deadline := time.Now().Add(a.limits.CloseTimeout)
	_ = a.conn.SetWriteDeadline(deadline)
	if a.readerDone {
		return
	}
	if cw, ok := a.conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = a.conn.SetReadDeadline(deadline)
}

// fail closes the socket at once. With a non-nil err it reports the error
// event first.
func (a *connActor) fail(ctx actor.Context, err error) {
	if a.phase == phaseClosed {
		return
	}
	a.phase = phaseClosed
	a.h.shared.dead.Store(true)
	if err != nil {
		a.failed = true
		a.log.Debug("connection failed", "conn", a.h.id, "remote", a.h.remote, "err", err)
		ctx.Send(a.owner, connFailed{a.h, err})
	}
	_ = a.conn.Close()
	a.reader.Stop()
	a.closeWriter()
	a.unsent(ctx, a.out.flatten())
	a.maybeFinish(ctx)
}

// maybeFinish reports the close once both pumps have exited, then stops.
func (a *connActor) maybeFinish(ctx actor.Context) {
	if !a.readerDone || !a.writerDone {
		return
	}
	if a.phase != phaseClosed {
		a.phase = phaseClosed
		a.h.shared.dead.Store(true)
	}
	_ = a.conn.Close()
	ctx.Send(a.owner, connDown{a.h, a.failed})
	ctx.Stop(a.self)
}
