// Package supervisor is a generic supervisor actor for Proto.Actor with an
// exponential backoff policy: initial and maximum delay, multiplier, jitter,
// a retry limit, a reset after a stable period, and restart intensity (at most
// N restarts within a period). It starts a child, watches it, restarts it
// after the policy's delay when it fails, and publishes lifecycle events.
//
// It imports nothing of the rest of tokenserver.
package supervisor
