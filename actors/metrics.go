package actors

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// MeterName is the name of the OpenTelemetry meter that holds the runtime's
// instruments (Runtime.MeterProvider).
const MeterName = "github.com/tokenserver/tokenserver/actors"

// The metrics of a Server or a Client, when Runtime.MeterProvider is set.
// Every instrument but one is asynchronous: a callback, registered once per
// handle, reads the stats' atomic counters when the MeterProvider collects,
// so traffic costs the metrics nothing. The exception is the delivery
// histogram, recorded once per read chunk with a prebuilt attribute set (no
// allocation). The callback is unregistered when the handle shuts down.

// Attribute keys.
const (
	attrRole    = "role"    // server, client
	attrOutcome = "outcome" // clean, error
	attrCode    = "code"    // an error code (codes.go)
	attrReason  = "reason"  // a drop's or a refusal's reason
	attrCause   = "cause"   // a failed handshake's or dial's cause
)

// deliveryBuckets are the bounds of the delivery histogram, in seconds: 5 µs
// to 10 s.
var deliveryBuckets = []float64{
	0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005,
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

// Codes that the closed and dropped counters report even at 0, so that a
// rate is defined from the first scrape on; other codes appear once they
// happen.
var (
	usualCloseCodes = []string{CodeInvalidEscape, CodeTokenTooLarge, CodeTruncated, CodeSlowConsumer,
		CodeConnection, CodeForcedClose}
	serverDropCodes = []string{CodeNotSent, CodeMaybeSent}
	clientDropCodes = []string{CodeNotSent, CodeMaybeSent, CodeBufferFull, CodeGaveUp, CodeClientClosed}
)

// meters are the instruments of one Server or Client, and the attribute
// sets they report with, built once.
type meters struct {
	delivery     metric.Float64Histogram
	deliveryOpts []metric.RecordOption
	reg          metric.Registration

	open, opened, closed, paused, queue                metric.Int64Observable
	recvTokens, recvBytes, sentTokens, sentBytes, drop metric.Int64Observable
	slowCuts, panics                                   metric.Int64Observable
	// token/2.
	acksSent, acksReceived, resent, redelivered metric.Int64Observable
	sessionsResumed, sessionsExpired            metric.Int64Observable
	budgetInUse, budgetWaits, sessionsWaiting   metric.Int64Observable
	// Server.
	accepted, refused, handshake, acceptRetries, listenRetries, listenGaveUp metric.Int64Observable
	// Client.
	attempts, failures, reconnects, gaveUp, buffer metric.Int64Observable

	base, clean               metric.ObserveOption
	closedBy, droppedBy       [numCodes]metric.ObserveOption
	usualClose, usualDrop     [numCodes]bool
	causeBy                   [numCauses]metric.ObserveOption
	refusedConns, refusedPend metric.ObserveOption
	excludeCause              int // a cause that does not apply to the side; -1: none

	s     *stats
	role  role
	extra []attribute.KeyValue // Runtime.MetricAttributes

	// While building.
	meter       metric.Meter
	observables []metric.Observable
	errs        []error
}

// startMetrics creates the instruments of s in rt.MeterProvider and registers
// their callback. Without a MeterProvider it does nothing.
func (s *stats) startMetrics(rt Runtime) error {
	if rt.MeterProvider == nil {
		return nil
	}
	m := &meters{s: s, role: s.role, extra: rt.MetricAttributes, excludeCause: -1,
		meter: rt.MeterProvider.Meter(MeterName)}
	m.instruments()
	m.attributes()
	if err := errors.Join(m.errs...); err != nil {
		return fmt.Errorf("%w: metrics: %w", ErrInvalidOptions, err)
	}
	reg, err := m.meter.RegisterCallback(m.observe, m.observables...)
	if err != nil {
		return fmt.Errorf("%w: metrics: %w", ErrInvalidOptions, err)
	}
	m.reg = reg
	s.metrics = m
	return nil
}

// stopMetrics unregisters the callback: a handle that has shut down reports
// nothing more.
func (s *stats) stopMetrics() {
	if s.metrics != nil {
		_ = s.metrics.reg.Unregister()
	}
}

func (m *meters) counter(name, unit, desc string) metric.Int64Observable {
	i, err := m.meter.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
	m.errs = append(m.errs, err)
	m.observables = append(m.observables, i)
	return i
}

func (m *meters) upDown(name, unit, desc string) metric.Int64Observable {
	i, err := m.meter.Int64ObservableUpDownCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
	m.errs = append(m.errs, err)
	m.observables = append(m.observables, i)
	return i
}

// instruments creates the instruments of m's side. The names, units and
// attributes are the README's ("Operating it"): change both together.
func (m *meters) instruments() {
	m.open = m.upDown("tokenserver.connections.open", "{connection}",
		"Connections open now: TLS handshake done (on a server, admitted under MaxConnections), not closed yet.")
	m.opened = m.counter("tokenserver.connections.opened", "{connection}",
		"Connections that opened.")
	m.closed = m.counter("tokenserver.connections.closed", "{connection}",
		"Open connections that closed, by outcome (clean, error) and, after an error, its code.")
	m.recvTokens = m.counter("tokenserver.received.tokens", "{token}", "Tokens read from peers.")
	m.recvBytes = m.counter("tokenserver.received.bytes", "By",
		"Bytes read from peers, as on the wire inside TLS (escaped, with newlines).")
	m.sentTokens = m.counter("tokenserver.sent.tokens", "{token}", "Tokens written to sockets.")
	m.sentBytes = m.counter("tokenserver.sent.bytes", "By",
		"Bytes written to sockets, as on the wire inside TLS (escaped, with newlines).")
	m.drop = m.counter("tokenserver.dropped.tokens", "{token}",
		"Tokens taken by Send that will never be written (OnDropped), by reason.")
	m.queue = m.upDown("tokenserver.queue.bytes", "By",
		"Bytes waiting in the outbound queues of the open connections.")
	m.paused = m.upDown("tokenserver.connections.paused", "{connection}",
		"Open connections whose reading is paused by flow control (outbound queue past the high-water mark).")
	m.slowCuts = m.counter("tokenserver.slow_consumer.cuts", "{connection}",
		"Connections cut as slow consumers (write timeout, or the queue's hard cap).")
	m.panics = m.counter("tokenserver.handler.panics", "{panic}", "Callbacks that panicked.")
	m.acksSent = m.counter("tokenserver.acks.sent", "{ack}", "token/2 acknowledgements written.")
	m.acksReceived = m.counter("tokenserver.acks.received", "{ack}", "token/2 acknowledgements read.")
	m.resent = m.counter("tokenserver.resent.tokens", "{token}",
		"token/2 tokens written again over a new connection of their session, the last one having broken before they were acknowledged.")
	m.redelivered = m.counter("tokenserver.redelivered.tokens", "{token}",
		"token/2 tokens received flagged as redelivered: their session was lost by a server, which may have delivered them before.")
	var err error
	m.delivery, err = m.meter.Float64Histogram("tokenserver.delivery.duration",
		metric.WithUnit("s"),
		metric.WithDescription("Time from a read chunk's arrival to the return of its handler (callbacks, or a handler PID's credit), once per chunk."),
		metric.WithExplicitBucketBoundaries(deliveryBuckets...))
	m.errs = append(m.errs, err)

	if m.role == roleServer {
		m.accepted = m.counter("tokenserver.server.accepted", "{connection}",
			"Sockets the listener accepted (each is then refused, fails its handshake, or opens).")
		m.refused = m.counter("tokenserver.server.refused", "{connection}",
			"Connections refused, by reason: max_pending (before the handshake, MaxPending full: evicted or refused), max_connections (after the handshake).")
		m.handshake = m.counter("tokenserver.server.handshake.failures", "{connection}",
			"Accepted sockets whose TLS handshake failed, by cause.")
		m.acceptRetries = m.counter("tokenserver.server.accept.retries", "{retry}",
			"Temporary accept errors, after each of which the listener accepts again after a backoff.")
		m.listenRetries = m.counter("tokenserver.server.listen.retries", "{retry}",
			"Listen retries of ServerOptions.ListenRetry.")
		m.listenGaveUp = m.counter("tokenserver.server.listen.giveups", "{giveup}",
			"Times the ListenRetry policy gave up.")
		m.sessionsResumed = m.counter("tokenserver.server.sessions.resumed", "{session}",
			"token/2 sessions taken up again over a new connection of their client.")
		m.sessionsExpired = m.counter("tokenserver.server.sessions.expired", "{session}",
			"token/2 sessions ended because their client did not come back within SessionTimeout.")
		m.sessionsWaiting = m.upDown("tokenserver.server.sessions.waiting", "{session}",
			"token/2 sessions whose connection broke, waiting now for their client to come back.")
		m.budgetInUse = m.upDown("tokenserver.server.memory_budget.used", "By",
			"The part of MemoryBudget granted now to connections reading large tokens.")
		m.budgetWaits = m.counter("tokenserver.server.memory_budget.waits", "{wait}",
			"Times a connection had to wait for the MemoryBudget (it stops reading meanwhile).")
		return
	}
	m.attempts = m.counter("tokenserver.client.connect.attempts", "{attempt}",
		"Connect attempts (dials): the first and every reconnection.")
	m.failures = m.counter("tokenserver.client.connect.failures", "{attempt}",
		"Connect attempts that failed, by cause.")
	m.reconnects = m.counter("tokenserver.client.reconnects", "{attempt}",
		"Reconnections scheduled by the client's supervisor.")
	m.gaveUp = m.counter("tokenserver.client.giveups", "{giveup}",
		"Times the reconnection policy gave up.")
	m.buffer = m.upDown("tokenserver.client.buffer.bytes", "By",
		"Bytes of tokens waiting in the reconnect buffer.")
}

// attributes builds every attribute set m reports with.
func (m *meters) attributes() {
	set := func(kvs ...attribute.KeyValue) attribute.Set {
		all := make([]attribute.KeyValue, 0, 1+len(m.extra)+len(kvs))
		all = append(all, attribute.String(attrRole, m.role.String()))
		all = append(all, m.extra...)
		return attribute.NewSet(append(all, kvs...)...)
	}
	opt := func(kvs ...attribute.KeyValue) metric.ObserveOption {
		return metric.WithAttributeSet(set(kvs...))
	}
	m.base = opt()
	m.deliveryOpts = []metric.RecordOption{metric.WithAttributeSet(set())}
	m.clean = opt(attribute.String(attrOutcome, "clean"))
	for i, code := range codeNames {
		m.closedBy[i] = opt(attribute.String(attrOutcome, "error"), attribute.String(attrCode, code))
		m.droppedBy[i] = opt(attribute.String(attrReason, code))
	}
	for _, code := range usualCloseCodes {
		m.usualClose[codeIndex(code)] = true
	}
	drops := serverDropCodes
	if m.role == roleClient {
		drops = clientDropCodes
	}
	for _, code := range drops {
		m.usualDrop[codeIndex(code)] = true
	}
	for i, cause := range causeNames {
		m.causeBy[i] = opt(attribute.String(attrCause, cause))
		if cause == CauseRefused && m.role == roleServer {
			m.excludeCause = i
		}
	}
	m.refusedConns = opt(attribute.String(attrReason, "max_connections"))
	m.refusedPend = opt(attribute.String(attrReason, "max_pending"))
}

// observe reports every count: the callback, run at collection time.
func (m *meters) observe(_ context.Context, o metric.Observer) error {
	s := m.s
	g := s.gauges()
	o.ObserveInt64(m.open, s.open.Load(), m.base)
	o.ObserveInt64(m.opened, s.opened.Load(), m.base)
	o.ObserveInt64(m.closed, s.closedClean.Load(), m.clean)
	for i := range s.closedError {
		if v := s.closedError[i].Load(); v != 0 || m.usualClose[i] {
			o.ObserveInt64(m.closed, v, m.closedBy[i])
		}
	}
	o.ObserveInt64(m.recvTokens, s.in.tokens.Load(), m.base)
	o.ObserveInt64(m.recvBytes, s.in.bytes.Load(), m.base)
	o.ObserveInt64(m.sentTokens, s.out.tokens.Load(), m.base)
	o.ObserveInt64(m.sentBytes, s.out.bytes.Load(), m.base)
	for i := range s.dropped {
		if v := s.dropped[i].Load(); v != 0 || m.usualDrop[i] {
			o.ObserveInt64(m.drop, v, m.droppedBy[i])
		}
	}
	o.ObserveInt64(m.queue, g.queued, m.base)
	o.ObserveInt64(m.paused, g.paused, m.base)
	o.ObserveInt64(m.slowCuts, s.slowCuts.Load(), m.base)
	o.ObserveInt64(m.panics, s.panics.Load(), m.base)
	o.ObserveInt64(m.acksSent, s.acksSent.Load(), m.base)
	o.ObserveInt64(m.acksReceived, s.acksReceived.Load(), m.base)
	o.ObserveInt64(m.resent, s.resentTokens.Load(), m.base)
	o.ObserveInt64(m.redelivered, s.redelivered.Load(), m.base)
	causes := func(inst metric.Int64Observable, counts *[numCauses]atomic.Int64) {
		for i := range counts {
			if v := counts[i].Load(); v != 0 || i != m.excludeCause {
				o.ObserveInt64(inst, v, m.causeBy[i])
			}
		}
	}
	if m.role == roleServer {
		o.ObserveInt64(m.accepted, s.accepted.Load(), m.base)
		o.ObserveInt64(m.refused, s.refusedConns.Load(), m.refusedConns)
		o.ObserveInt64(m.refused, s.refusedPend.Load(), m.refusedPend)
		causes(m.handshake, &s.handshake)
		o.ObserveInt64(m.acceptRetries, s.acceptRetries.Load(), m.base)
		o.ObserveInt64(m.listenRetries, s.retries.Load(), m.base)
		o.ObserveInt64(m.listenGaveUp, s.gaveUp.Load(), m.base)
		o.ObserveInt64(m.sessionsResumed, s.sessionsResumed.Load(), m.base)
		o.ObserveInt64(m.sessionsExpired, s.sessionsExpired.Load(), m.base)
		o.ObserveInt64(m.sessionsWaiting, s.sessionsWaiting.Load(), m.base)
		o.ObserveInt64(m.budgetInUse, s.budgetInUse.Load(), m.base)
		o.ObserveInt64(m.budgetWaits, s.budgetWaits.Load(), m.base)
		return nil
	}
	o.ObserveInt64(m.attempts, s.connectAttempts.Load(), m.base)
	causes(m.failures, &s.connectFailures)
	o.ObserveInt64(m.reconnects, s.retries.Load(), m.base)
	o.ObserveInt64(m.gaveUp, s.gaveUp.Load(), m.base)
	o.ObserveInt64(m.buffer, g.buffered, m.base)
	return nil
}
