package supervisor

import (
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// ErrInvalidPolicy is wrapped by every error that Policy.Validate returns.
// Use errors.Is to test for it and errors.As with *PolicyError to learn
// which field is wrong.
var ErrInvalidPolicy = errors.New("supervisor: invalid policy")

// PolicyError describes one invalid field of a Policy. It unwraps to
// ErrInvalidPolicy.
type PolicyError struct {
	// Field is the name of the Policy field that is wrong, e.g. "Jitter".
	Field string
	// Reason says what is wrong with it, including the offending value.
	Reason string
}

// Error implements error.
func (e *PolicyError) Error() string {
	return ErrInvalidPolicy.Error() + ": " + e.Field + ": " + e.Reason
}

// Unwrap returns ErrInvalidPolicy.
func (e *PolicyError) Unwrap() error { return ErrInvalidPolicy }

// Policy is an exponential backoff policy with jitter, a cap, a retry limit,
// a reset after a stable period and an optional restart intensity limit.
//
// The zero Policy is not valid: start from DefaultPolicy and change what you
// need. The defaults named below are those of DefaultPolicy; a zero field is
// never silently replaced by a default (Jitter 0 means no jitter, ResetAfter 0
// means never reset).
//
// The delay before retry n (n = 1, 2, ...) is
//
//	min(Initial * Multiplier^(n-1), Max) * f, capped again at Max,
//
// where f is uniform in [1-Jitter, 1+Jitter).
type Policy struct {
	// Initial is the delay before the first retry (default 100ms). Must be > 0.
	Initial time.Duration
	// Max caps every delay, jitter included (default 30s). Must be >= Initial.
	Max time.Duration
	// Multiplier is the growth factor between consecutive delays (default 2).
	// Must be >= 1 and finite.
	Multiplier float64
	// Jitter is the random factor in [0, 1] (default 0.2): the delay is
	// multiplied by a uniform factor in [1-Jitter, 1+Jitter], then capped at
	// Max.
	Jitter float64
	// MaxRetries is the number of retries allowed in a row (default 10): the
	// failure that would need retry MaxRetries+1 makes the backoff give up.
	// 0 is only valid together with Unlimited.
	MaxRetries int
	// Unlimited means there is no retry limit; MaxRetries must then be 0.
	Unlimited bool
	// ResetAfter: when the child (or connection) stayed up at least this
	// long, the attempt counter goes back to zero before the next failure is
	// counted (default 1 minute). 0 means never.
	ResetAfter time.Duration
	// MaxRestarts is the restart intensity: at most MaxRestarts restarts
	// within any window of length Within, after which the backoff gives up,
	// whatever ResetAfter did. 0 means no intensity limit.
	MaxRestarts int
	// Within is the window of the restart intensity limit. It must be > 0
	// when MaxRestarts > 0.
	Within time.Duration
}

// DefaultPolicy returns the default policy: Initial 100ms, Max 30s,
// Multiplier 2, Jitter 0.2, MaxRetries 10, ResetAfter 1 minute, and no
// restart intensity limit.
func DefaultPolicy() Policy {
	return Policy{
		Initial:    100 * time.Millisecond,
		Max:        30 * time.Second,
		Multiplier: 2,
		Jitter:     0.2,
		MaxRetries: 10,
		ResetAfter: time.Minute,
	}
}

// Validate reports every invalid field of p. The result is nil or one or
// more *PolicyError joined with errors.Join; errors.Is(err, ErrInvalidPolicy)
// holds for any non-nil result.
func (p Policy) Validate() error {
	var errs []error
	bad := func(field, reason string) {
		errs = append(errs, &PolicyError{Field: field, Reason: reason})
	}

	if p.Initial <= 0 {
		bad("Initial", "must be > 0, got "+p.Initial.String())
	}
	if p.Max < p.Initial {
		bad("Max", "must be >= Initial ("+p.Initial.String()+"), got "+p.Max.String())
	}
	if math.IsNaN(p.Multiplier) || math.IsInf(p.Multiplier, 0) || p.Multiplier < 1 {
		bad("Multiplier", "must be finite and >= 1, got "+strconv.FormatFloat(p.Multiplier, 'g', -1, 64))
	}
	if math.IsNaN(p.Jitter) || p.Jitter < 0 || p.Jitter > 1 {
		bad("Jitter", "must be in [0, 1], got "+strconv.FormatFloat(p.Jitter, 'g', -1, 64))
	}
	switch {
	case p.MaxRetries < 0:
		bad("MaxRetries", "must be >= 0, got "+strconv.Itoa(p.MaxRetries))
	case p.Unlimited && p.MaxRetries != 0:
		bad("MaxRetries", "must be 0 when Unlimited is set, got "+strconv.Itoa(p.MaxRetries))
	case !p.Unlimited && p.MaxRetries == 0:
		bad("MaxRetries", "0 requires Unlimited (set a limit > 0 or Unlimited: true)")
	}
	if p.ResetAfter < 0 {
		bad("ResetAfter", "must be >= 0 (0 = never), got "+p.ResetAfter.String())
	}
	if p.MaxRestarts < 0 {
		bad("MaxRestarts", "must be >= 0 (0 = no limit), got "+strconv.Itoa(p.MaxRestarts))
	}
	if p.Within < 0 {
		bad("Within", "must be >= 0, got "+p.Within.String())
	} else if p.MaxRestarts > 0 && p.Within == 0 {
		bad("Within", "must be > 0 when MaxRestarts > 0")
	}
	return errors.Join(errs...)
}

// Delay returns the delay before retry number attempt (1 for the first
// retry). It is a pure function of its arguments: attempt n gives
// Initial*Multiplier^(n-1), capped at Max, multiplied by a factor uniform in
// [1-Jitter, 1+Jitter) drawn from rnd, and capped at Max again. Attempts below
// 1 count as 1. With rnd nil or Jitter 0 there is no jitter and rnd is not
// used; otherwise exactly one rnd.Float64 is drawn, so a seeded rnd gives an
// exact, reproducible sequence. Delay assumes a valid policy (see Validate)
// but never returns a negative duration or panics.
func (p Policy) Delay(attempt int, rnd *rand.Rand) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	limit := float64(p.Max)
	if p.Max <= 0 {
		limit = math.MaxInt64
	}
	mult := p.Multiplier
	if !(mult >= 1) || math.IsInf(mult, 0) { // also catches NaN
		mult = 1
	}

	d := float64(p.Initial) * math.Pow(mult, float64(attempt-1))
	if math.IsNaN(d) || d > limit {
		d = limit
	}
	if j := clamp01(p.Jitter); rnd != nil && j > 0 {
		d *= 1 - j + 2*j*rnd.Float64()
	}
	if d > limit {
		d = limit
	}
	if !(d > 0) {
		return 0
	}
	if d >= math.MaxInt64 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(d)
}

func clamp01(f float64) float64 {
	switch {
	case math.IsNaN(f) || f < 0:
		return 0
	case f > 1:
		return 1
	}
	return f
}
