package actors

import (
	"context"
	"sync/atomic"
	"time"
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

// codeNames is every error code, in the order of the stats' arrays;
// CodeOther is the last.
var codeNames = [...]string{
	CodeInvalidEscape, CodeTokenTooLarge, CodeTruncated, CodeHandshake, CodeSlowConsumer,
	CodeListen, CodeDial, CodeConnection, CodeTooManyConns, CodeTooManyPend, CodeHandlerPanic,
	CodeForcedClose, CodeBufferFull, CodeGaveUp, CodeClientClosed, CodeNotSent, CodeMaybeSent,
	CodeSessionExpired, CodeSessionRefused, CodeMemoryBudget, CodeOther,
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
	// token/2 (conn_session.go).
	acksSent, acksReceived           atomic.Int64
	resentTokens, redelivered        atomic.Int64
	sessionsResumed, sessionsExpired atomic.Int64
	// The server's memory budget (server_budget.go): granted now (the
	// server actor adds and takes back), and asks that had to wait.
	budgetInUse, budgetWaits atomic.Int64
	// sessionsWaiting: a server's token/2 sessions whose socket broke and
	// that wait for their client (the server actor adds and takes back).
	sessionsWaiting atomic.Int64
	metrics         *meters // nil: metrics off
	_               [64]byte
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

// wrote counts a batch written in full: n bytes holding tokens tokens.
func (s *stats) wrote(n, tokens int) {
	if s == nil {
		return
	}
	s.out.tokens.Add(int64(tokens))
	s.out.bytes.Add(int64(n))
}

// ackSent and ackReceived count token/2 acknowledgements written and read.
func (s *stats) ackSent() {
	if s != nil {
		s.acksSent.Add(1)
	}
}

func (s *stats) ackReceived() {
	if s != nil {
		s.acksReceived.Add(1)
	}
}

// resent counts tokens written again over a new connection of their session.
func (s *stats) resent(tokens int) {
	if s != nil && tokens > 0 {
		s.resentTokens.Add(int64(tokens))
	}
}

// redeliveredIn counts tokens received flagged as redelivered (their
// session was lost by a server, which may have delivered them before).
func (s *stats) redeliveredIn(tokens int) {
	if s != nil && tokens > 0 {
		s.redelivered.Add(int64(tokens))
	}
}

// sessionResumed and sessionExpired count a server's token/2 sessions taken
// up by a new connection of their client, and ended by the session timeout.
func (s *stats) sessionResumed() {
	if s != nil {
		s.sessionsResumed.Add(1)
	}
}

func (s *stats) sessionExpired() {
	if s != nil {
		s.sessionsExpired.Add(1)
	}
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
