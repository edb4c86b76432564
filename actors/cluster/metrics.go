package cluster

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// MeterName is the name of the OpenTelemetry meter that holds a front's
// instruments (FrontOptions.MeterProvider).
const MeterName = "github.com/tokenserver/tokenserver/actors/cluster"

// The metrics of a Front, when FrontOptions.MeterProvider is set: the
// counts of Stats, as the actors package reports a server's. Every
// instrument is asynchronous: one callback per front, registered by
// NewFront and unregistered by Stop, reads the router's atomic counters
// when the MeterProvider collects, so the remote path costs the metrics
// nothing. The names, units and descriptions are the README's ("Operating
// it"): change both together.

// frontMetrics are the instruments of one front.
type frontMetrics struct {
	connections, forwarded, batches, messages, resent, replies, duplicates, lookups, failovers metric.Int64ObservableCounter
	attrs                                                                                      metric.ObserveOption
	reg                                                                                        metric.Registration
}

// startMetrics creates f's instruments in f.opts.MeterProvider and
// registers their callback. Without a MeterProvider it does nothing.
func (f *Front) startMetrics() error {
	if f.opts.MeterProvider == nil {
		return nil
	}
	meter := f.opts.MeterProvider.Meter(MeterName)
	var (
		errs []error
		obs  []metric.Observable
	)
	counter := func(name, unit, desc string) metric.Int64ObservableCounter {
		c, err := meter.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		obs = append(obs, c)
		return c
	}
	m := &frontMetrics{
		connections: counter("tokenserver.cluster.connections.routed", "{connection}",
			"Connections of the front's server routed to a handler grain."),
		forwarded: counter("tokenserver.cluster.forwarded.tokens", "{token}",
			"Tokens sent to handler grains (batches sent again after a loss not counted)."),
		batches: counter("tokenserver.cluster.forwarded.batches", "{batch}",
			"Batches of a connection's tokens sent to handler grains (batches sent again after a loss not counted)."),
		messages: counter("tokenserver.cluster.sent.messages", "{message}",
			"Messages sent to handler grains: a TokenBatch, or a TokenBatches holding several batches."),
		resent: counter("tokenserver.cluster.resent.batches", "{batch}",
			"Batches sent again, to a grain's new activation, after the grain was lost before it credited them."),
		replies: counter("tokenserver.cluster.reply.tokens", "{token}",
			"Reply tokens from handler grains handed to connections."),
		duplicates: counter("tokenserver.cluster.duplicate.credits", "{credit}",
			"Credits from grains dropped as already seen (answers to batches sent again)."),
		lookups: counter("tokenserver.cluster.lookups", "{lookup}",
			"Grain lookups started: a connection's first, and again after a grain was lost or the membership changed."),
		failovers: counter("tokenserver.cluster.failovers", "{failover}",
			"Grains lost with batches outstanding, then reached again (FrontOptions.OnFailover)."),
		attrs: metric.WithAttributeSet(attribute.NewSet(f.opts.MetricAttributes...)),
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: metrics: %w", ErrInvalidFront, err)
	}
	reg, err := meter.RegisterCallback(m.observe(f), obs...)
	if err != nil {
		return fmt.Errorf("%w: metrics: %w", ErrInvalidFront, err)
	}
	m.reg = reg
	f.metrics = m
	return nil
}

// observe returns the callback that reports f's counts.
func (m *frontMetrics) observe(f *Front) metric.Callback {
	return func(_ context.Context, o metric.Observer) error {
		s := f.Stats()
		o.ObserveInt64(m.connections, s.Connections, m.attrs)
		o.ObserveInt64(m.forwarded, s.Forwarded, m.attrs)
		o.ObserveInt64(m.batches, s.Batches, m.attrs)
		o.ObserveInt64(m.messages, s.Messages, m.attrs)
		o.ObserveInt64(m.resent, s.Resent, m.attrs)
		o.ObserveInt64(m.replies, s.Replies, m.attrs)
		o.ObserveInt64(m.duplicates, s.Duplicates, m.attrs)
		o.ObserveInt64(m.lookups, s.Lookups, m.attrs)
		o.ObserveInt64(m.failovers, s.Failovers, m.attrs)
		return nil
	}
}

// stopMetrics unregisters the callback: a front that has stopped reports
// nothing more.
func (f *Front) stopMetrics() {
	if f.metrics != nil {
		_ = f.metrics.reg.Unregister()
	}
}
