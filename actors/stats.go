package actors

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tokenserver/tokenserver/tlsio"
)

// The counts of a Server or a Client: what Stats returns and what the metrics
// report (metrics.go). Every count is an atomic counter of the handle's stats,
// changed once per event, per read chunk or per write batch, never under a
// lock and without allocating: the connection actors that count tokens run
// on the goroutines of their pumps, many at once. The metrics only read these
// counters, at collection time; the one exception is the delivery histogram,
// recorded once per read chunk, and only when metrics are on.
//
// Who counts what:
//   - the connection actor (conn_read.go, conn_write.go, conn_actor.go):
//     tokens and bytes read per chunk, written per batch, connect attempts,
//     and the time of each chunk's arrival;
//   - the owner's emitter (emitter.go): every event goes through stats.event
//     (connections opened, errors by code and cause, tokens dropped,
//     reconnections), and handler panics;
//   - the owner actor (server_actor.go, client_actor.go): sockets accepted,
//     accept retries, connections closed;
//   - the gauges (bytes queued, connections paused, the reconnect buffer) are
//     read from the live connections when asked (Stats, a collection).

// Causes of a failed TLS handshake (Stats.HandshakeFailures, the cause
// attribute of tokenserver.server.handshake.failures) and of a failed connect
// attempt of a client (ConnectFailures).
const (
	// CauseTimeout: the handshake or the dial did not finish within
	// Limits.HandshakeTimeout.
	CauseTimeout = "timeout"
	// CauseCertificate: a certificate was missing, or did not verify (by us,
	// or by the peer, which said so with an alert).
	CauseCertificate = "certificate"
	// CauseClosed: the peer closed or reset the connection in the middle of
	// the handshake.
	CauseClosed = "closed"
	// CauseNotTLS: the peer does not speak TLS (a plain-text client, say).
	CauseNotTLS = "not_tls"
	// CauseTLS: another TLS failure (no common version or cipher suite, a
	// bad message).
	CauseTLS = "tls"
	// CauseRefused: nothing listens at the address (clients only).
	CauseRefused = "refused"
	// CauseOther: anything else.
	CauseOther = "other"
)

// causeNames is every cause, in the order of the stats' arrays.
var causeNames = [...]string{CauseTimeout, CauseCertificate, CauseClosed, CauseNotTLS, CauseTLS, CauseRefused, CauseOther}

const numCauses = len(causeNames)

// codeNames is every error code, in the order of the stats' arrays;
// CodeOther is the last.
var codeNames = [...]string{
	CodeInvalidEscape, CodeTokenTooLarge, CodeTruncated, CodeHandshake, CodeSlowConsumer,
	CodeListen, CodeDial, CodeConnection, CodeTooManyConns, CodeTooManyPend, CodeHandlerPanic,
	CodeForcedClose, CodeBufferFull, CodeGaveUp, CodeClientClosed, CodeNotSent, CodeMaybeSent,
	CodeOther,
}

const numCodes = len(codeNames)

// codeIndex is the index of code in codeNames (that of CodeOther when it is
// not one of them).
func codeIndex(code string) int {
	for i, c := range codeNames {
		if c == code {
			return i
		}
	}
	return numCodes - 1
}

// Stats is a snapshot of the counts of a Server or a Client: the same counts
// the metrics report (see Runtime.MeterProvider), kept with metrics off too.
// Counts run from the handle's creation, across Close and Connect. Each is
// read atomically, but not all at one instant: under traffic, two of them may
// be a few events apart. A count that does not apply to the handle's side
// (server or client) is 0.
type Stats struct {
	// Open is the number of connections open now: TLS handshake done (on a
	// server, and admitted under MaxConnections), not yet closed.
	Open int64
	// Opened counts the connections that opened.
	Opened int64
	// ClosedClean counts the open connections that closed without an error.
	ClosedClean int64
	// ClosedError counts the open connections that closed after an error,
	// by its code (CodeInvalidEscape, CodeSlowConsumer, CodeConnection...).
	// Codes that never happened are absent; nil when none did.
	ClosedError map[string]int64

	// TokensReceived counts the tokens read from peers (remoteClose frames
	// are not tokens).
	TokensReceived int64
	// BytesReceived counts the bytes read from peers, as they are on the
	// wire inside TLS: escaped, newlines included.
	BytesReceived int64
	// TokensSent counts the tokens written to sockets.
	TokensSent int64
	// BytesSent counts the bytes written to sockets, as they are on the wire
	// inside TLS.
	BytesSent int64
	// Dropped counts the tokens reported dropped (OnDropped, TokensDropped),
	// by reason code: CodeNotSent, CodeMaybeSent, and on a client
	// CodeBufferFull, CodeGaveUp, CodeClientClosed. Nil when none were.
	Dropped map[string]int64

	// QueuedBytes is the bytes waiting in the outbound queues of the open
	// connections now (Connection.Queued, summed).
	QueuedBytes int64
	// ReadPaused is the number of open connections whose reading is paused
	// now by flow control (Connection.ReadPaused).
	ReadPaused int64
	// SlowConsumerCuts counts the connections cut as slow consumers
	// (ErrSlowConsumer: the write timeout, or the hard cap of the queue).
	SlowConsumerCuts int64
	// HandlerPanics counts the callbacks that panicked (ErrHandlerPanic).
	HandlerPanics int64

	// Accepted counts the sockets the server's listener accepted: each one
	// is then refused or evicted (RefusedMaxPending), fails its handshake
	// (HandshakeFailures), is refused (RefusedMaxConnections), is closed
	// in its handshake by the server's close, or opens. Server only.
	Accepted int64
	// RefusedMaxConnections counts the connections refused, once their
	// handshake was done, at MaxConnections. Server only.
	RefusedMaxConnections int64
	// RefusedMaxPending counts the sockets shut out at MaxPending before
	// their handshake: evicted (silent) to make room, or refused when
	// nothing could be. Server only.
	RefusedMaxPending int64
	// HandshakeFailures counts the accepted sockets whose TLS handshake
	// failed, by cause (CauseTimeout, CauseCertificate, CauseClosed,
	// CauseNotTLS, CauseTLS, CauseOther). Nil when none did. Server only.
	HandshakeFailures map[string]int64
	// AcceptRetries counts temporary accept errors (too many open files,
	// say), after each of which the listener accepts again after a backoff.
	// Server only.
	AcceptRetries int64
	// ListenRetries counts the retries of ServerOptions.ListenRetry, and
	// ListenGaveUp its give-ups. Server only.
	ListenRetries, ListenGaveUp int64

	// ConnectAttempts counts the client's connect attempts (dials), the
	// first one and every reconnection. Client only.
	ConnectAttempts int64
	// ConnectFailures counts the connect attempts that failed, by cause
	// (CauseRefused, CauseTimeout, CauseCertificate...). Nil when none did.
	// Client only.
	ConnectFailures map[string]int64
	// Reconnects counts the reconnections the client's supervisor scheduled
	// (OnReconnecting), and GaveUp its give-ups (OnGaveUp). Client only.
	Reconnects, GaveUp int64
	// BufferedBytes is the bytes of tokens waiting in the reconnect buffer
	// now (Client.Buffered). Client only.
	BufferedBytes int64
}

// Stats returns a snapshot of the server's counts. It is cheap: a few dozen
// atomic loads, plus two per open connection for QueuedBytes and ReadPaused.
// It allocates only for the maps of errors, drops and failures that
// happened.
func (s *Server) Stats() Stats { return s.stats.snapshot() }

// Stats returns a snapshot of the client's counts. It is cheap: a few dozen
// atomic loads. It allocates only for the maps of errors, drops and failures
// that happened.
func (c *Client) Stats() Stats { return c.stats.snapshot() }

// role is the side of a stats: server or client.
type role uint8

const (
	roleServer role = iota
	roleClient
)

func (r role) String() string {
	if r == roleClient {
		return "client"
	}
	return "server"
}

// gaugeValues are the counts read from the live connections.
type gaugeValues struct{ queued, paused, buffered int64 }

// traffic is the counts of one direction, on cache lines of their own: the
// connection actors of every connection add to them.
type traffic struct {
	tokens, bytes atomic.Int64
	_             [128 - 16]byte
}

// stats is the counts of one Server or Client. Connection actors hold a
// pointer to their owner's; a nil *stats (standalone connections) counts
// nothing.
type stats struct {
	_   [128]byte
	in  traffic // read
	out traffic // written

	role   role
	gauges func() gaugeValues

	opened, open, closedClean  atomic.Int64
	closedError, dropped       [numCodes]atomic.Int64
	accepted, acceptRetries    atomic.Int64
	refusedConns, refusedPend  atomic.Int64
	handshake, connectFailures [numCauses]atomic.Int64
	connectAttempts            atomic.Int64
	retries, gaveUp            atomic.Int64 // client: reconnects; server: listen retries
	panics, slowCuts           atomic.Int64
	metrics                    *meters // nil: metrics off
	_                          [64]byte
}

// connObs is what the owner's stats remember of one connection. It is the
// owner actor's alone.
type connObs struct {
	opened, closed bool
	code           uint8 // codeIndex+1 of its error; 0: none
}

func newStats(r role, gauges func() gaugeValues) *stats {
	return &stats{role: r, gauges: gauges}
}

// read counts the tokens and bytes of one read chunk.
func (s *stats) read(n, tokens int) {
	if s == nil {
		return
	}
	s.in.tokens.Add(int64(tokens))
	s.in.bytes.Add(int64(n))
}

var newline = []byte{'\n'}

// wrote counts a batch written in full: n bytes holding tokens tokens.
func (s *stats) wrote(n, tokens int) {
	if s == nil {
		return
	}
	s.out.tokens.Add(int64(tokens))
	s.out.bytes.Add(int64(n))
}

// wroteBefore counts the frames written in full by a write that failed
// after written bytes of segs.
func (s *stats) wroteBefore(segs [][]byte, written int) {
	if s == nil || written <= 0 {
		return
	}
	frames, left := 0, written
	for _, b := range segs {
		if left <= 0 {
			break
		}
		frames += bytes.Count(b[:min(left, len(b))], newline)
		left -= len(b)
	}
	s.out.tokens.Add(int64(frames))
	s.out.bytes.Add(int64(written))
}

// connectAttempt counts a client's dial.
func (s *stats) connectAttempt() {
	if s != nil {
		s.connectAttempts.Add(1)
	}
}

// epoch is the origin of the arrival stamps (a monotonic clock reading).
var epoch = time.Now()

// stamp returns the arrival time of a read chunk when the delivery histogram
// is on, and 0 (without reading the clock) when it is off.
func (s *stats) stamp() int64 {
	if s == nil || s.metrics == nil {
		return 0
	}
	return int64(time.Since(epoch))
}

// delivered records the time from a chunk's arrival (its stamp) to the
// return of its handler: the callbacks, and a handler PID's credit.
func (s *stats) delivered(at int64) {
	if at == 0 || s == nil || s.metrics == nil {
		return
	}
	d := time.Since(epoch) - time.Duration(at)
	s.metrics.delivery.Record(context.Background(), d.Seconds(), s.metrics.deliveryOpts...)
}

// event counts what one event says; the emitter calls it for each (c is the
// connection concerned, err the Go error behind an ErrorOccurred).
func (s *stats) event(ev any, c *Connection, err error) {
	if s == nil {
		return
	}
	switch ev := ev.(type) {
	case *Connected:
		if c != nil && !c.obs.opened {
			c.obs.opened = true
			s.opened.Add(1)
			s.open.Add(1)
		}
	case *ErrorOccurred:
		code := codeIndex(ev.Code)
		if c != nil {
			c.obs.code = uint8(code + 1)
		}
		switch ev.Code {
		case CodeHandshake:
			if c != nil && !c.obs.opened {
				s.handshake[causeOf(err)].Add(1)
			}
		case CodeDial:
			s.connectFailures[causeOf(err)].Add(1)
		case CodeTooManyConns:
			s.refusedConns.Add(1)
		case CodeTooManyPend:
			s.refusedPend.Add(1)
		case CodeSlowConsumer:
			s.slowCuts.Add(1)
		}
	case *TokensDropped:
		s.dropped[codeIndex(ev.Code)].Add(int64(len(ev.Tokens)))
	case *Reconnecting:
		s.retries.Add(1)
	case *ReconnectGaveUp:
		s.gaveUp.Add(1)
	}
}

// panicked counts a callback that panicked.
func (s *stats) panicked() {
	if s != nil {
		s.panics.Add(1)
	}
}

// down counts the end of connection c, if it had opened.
func (s *stats) down(c *Connection, hadError bool) {
	if s == nil || !c.obs.opened || c.obs.closed {
		return
	}
	c.obs.closed = true
	s.open.Add(-1)
	switch {
	case !hadError:
		s.closedClean.Add(1)
	case c.obs.code == 0:
		s.closedError[numCodes-1].Add(1)
	default:
		s.closedError[c.obs.code-1].Add(1)
	}
}

// snapshot reads every count.
func (s *stats) snapshot() Stats {
	g := s.gauges()
	st := Stats{
		Open: s.open.Load(), Opened: s.opened.Load(), ClosedClean: s.closedClean.Load(),
		ClosedError:    countsOf(codeNames[:], s.closedError[:]),
		TokensReceived: s.in.tokens.Load(), BytesReceived: s.in.bytes.Load(),
		TokensSent: s.out.tokens.Load(), BytesSent: s.out.bytes.Load(),
		Dropped:     countsOf(codeNames[:], s.dropped[:]),
		QueuedBytes: g.queued, ReadPaused: g.paused,
		SlowConsumerCuts: s.slowCuts.Load(), HandlerPanics: s.panics.Load(),
	}
	if s.role == roleServer {
		st.Accepted = s.accepted.Load()
		st.RefusedMaxConnections, st.RefusedMaxPending = s.refusedConns.Load(), s.refusedPend.Load()
		st.HandshakeFailures = countsOf(causeNames[:], s.handshake[:])
		st.AcceptRetries = s.acceptRetries.Load()
		st.ListenRetries, st.ListenGaveUp = s.retries.Load(), s.gaveUp.Load()
		return st
	}
	st.ConnectAttempts = s.connectAttempts.Load()
	st.ConnectFailures = countsOf(causeNames[:], s.connectFailures[:])
	st.Reconnects, st.GaveUp = s.retries.Load(), s.gaveUp.Load()
	st.BufferedBytes = g.buffered
	return st
}

// countsOf returns the non-zero counts by name, or nil.
func countsOf(names []string, counts []atomic.Int64) map[string]int64 {
	var m map[string]int64
	for i := range counts {
		if v := counts[i].Load(); v != 0 {
			if m == nil {
				m = map[string]int64{}
			}
			m[names[i]] = v
		}
	}
	return m
}

// gauges reads the server's live connections.
func (s *Server) gauges() gaugeValues {
	var g gaugeValues
	list := s.conns.Load()
	if list == nil {
		return g
	}
	for _, c := range *list {
		g.queued += int64(c.Queued())
		if c.ReadPaused() {
			g.paused++
		}
	}
	return g
}

// gauges reads the client's connection and its reconnect buffer.
func (c *Client) gauges() gaugeValues {
	g := gaugeValues{buffered: max(c.buffered.Load(), 0)}
	if conn := c.conn.Load(); conn != nil {
		g.queued = int64(conn.Queued())
		if conn.ReadPaused() {
			g.paused = 1
		}
	}
	return g
}

// causeOf classifies why a handshake or a dial failed: an index in
// causeNames.
func causeOf(err error) int {
	var (
		alert   tls.AlertError
		verify  *tls.CertificateVerificationError
		unknown x509.UnknownAuthorityError
		invalid x509.CertificateInvalidError
		host    x509.HostnameError
		record  tls.RecordHeaderError
		ne      net.Error
	)
	index := func(cause string) int {
		for i, c := range causeNames {
			if c == cause {
				return i
			}
		}
		return numCauses - 1
	}
	switch {
	case err == nil:
		return index(CauseOther)
	case errors.Is(err, tlsio.ErrHandshakeTimeout), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return index(CauseTimeout)
	case errors.Is(err, syscall.ECONNREFUSED):
		return index(CauseRefused)
	case errors.As(err, &verify), errors.As(err, &unknown), errors.As(err, &invalid), errors.As(err, &host),
		errors.As(err, &alert) && certificateAlert(alert),
		strings.Contains(err.Error(), "certificate"):
		return index(CauseCertificate)
	case errors.As(err, &record):
		return index(CauseNotTLS)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		return index(CauseClosed)
	case errors.As(err, &alert), strings.Contains(err.Error(), "tls: "):
		return index(CauseTLS)
	}
	return index(CauseOther)
}

// certificateAlert reports whether a TLS alert from the peer is about a
// certificate: bad_certificate (42) to certificate_unknown (46), unknown_ca
// (48) and certificate_required (116).
func certificateAlert(a tls.AlertError) bool { return (a >= 42 && a <= 46) || a == 48 || a == 116 }
