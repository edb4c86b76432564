package actors

import "sync/atomic"

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
	// now (Client.Buffered), with those of its token/2 session that wait to
	// be sent again. Client only.
	BufferedBytes int64

	// token/2 (wire/TOKEN2.md). AcksSent and AcksReceived count the
	// acknowledgements written and read. TokensResent counts the tokens
	// written again over a new connection because the last one broke before
	// they were acknowledged. TokensRedelivered counts the tokens received
	// flagged as redelivered: their session was lost by a server (it
	// restarted), which may have delivered them already. SessionsResumed
	// counts the sessions a server took up again over a new connection of
	// their client, and SessionsExpired those it ended because the client
	// did not come back within ServerOptions.SessionTimeout (server only).
	AcksSent, AcksReceived           int64
	TokensResent, TokensRedelivered  int64
	SessionsResumed, SessionsExpired int64

	// SessionsWaiting is the number of token/2 sessions whose connection
	// broke and that wait now for their client to come back (their
	// Connection counts in Open meanwhile). Server only.
	SessionsWaiting int64

	// MemoryBudgetInUse is the part of ServerOptions.MemoryBudget granted
	// now to connections reading large tokens, and MemoryBudgetWaits counts
	// the times a connection had to wait for it. Server only.
	MemoryBudgetInUse, MemoryBudgetWaits int64
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
		AcksSent: s.acksSent.Load(), AcksReceived: s.acksReceived.Load(),
		TokensResent: s.resentTokens.Load(), TokensRedelivered: s.redelivered.Load(),
	}
	if s.role == roleServer {
		st.Accepted = s.accepted.Load()
		st.RefusedMaxConnections, st.RefusedMaxPending = s.refusedConns.Load(), s.refusedPend.Load()
		st.HandshakeFailures = countsOf(causeNames[:], s.handshake[:])
		st.AcceptRetries = s.acceptRetries.Load()
		st.ListenRetries, st.ListenGaveUp = s.retries.Load(), s.gaveUp.Load()
		st.SessionsResumed, st.SessionsExpired = s.sessionsResumed.Load(), s.sessionsExpired.Load()
		st.MemoryBudgetInUse, st.MemoryBudgetWaits = s.budgetInUse.Load(), s.budgetWaits.Load()
		st.SessionsWaiting = s.sessionsWaiting.Load()
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
