package main

import (
	"errors"
	"sync/atomic"
)

// readiness is serve's answer to the readiness probe (/readyz on the
// --metrics address): not ready until the server listens, ready while it
// listens and accepts, not ready again from the moment it closes. serve's
// goroutine writes it; the metrics server's goroutines read it.
type readiness struct {
	notReady atomic.Pointer[string] // why not ready; nil when ready
}

func newReadiness() *readiness {
	r := &readiness{}
	r.set("starting: not listening yet")
	return r
}

func (r *readiness) set(reason string) { r.notReady.Store(&reason) }

// listening: the server listens and accepts.
func (r *readiness) listening() { r.notReady.Store(nil) }

// closing: the server closes (a signal, or a failure).
func (r *readiness) closing() { r.set("closing") }

// check is nil when ready, else why not (metricsserver.Options.Ready).
func (r *readiness) check() error {
	if p := r.notReady.Load(); p != nil {
		return errors.New(*p)
	}
	return nil
}
