package supervisor

import (
	"math/rand/v2"
	"time"
)

// Backoff tracks consecutive failures under a Policy and says how long to
// wait before the next retry, or that it is time to give up. It is the
// attempt tracker of the supervisor actor and can be embedded by any actor
// that retries by itself (for example a client that reconnects).
//
// Backoff reads no clock: every method that needs the time takes it as an
// argument, so it can be driven with synthetic times. It is not safe for
// concurrent use; inside an actor that is never needed.
//
// Once it has given up, Next keeps returning ok=false until Reset.
type Backoff struct {
	policy Policy
	rnd    *rand.Rand

	attempt  int
	up       bool      // Up was called and no failure since
	upSince  time.Time // time of that Up
	restarts []time.Time
	gaveUp   bool
}

// NewBackoff returns a Backoff for p, drawing jitter from rnd (nil: no
// jitter). p should be valid (see Policy.Validate); NewBackoff does not check
// it. rnd is used by the Backoff only and must not be used concurrently by
// anything else.
func NewBackoff(p Policy, rnd *rand.Rand) *Backoff {
	return &Backoff{policy: p, rnd: rnd}
}

// Policy returns the policy the Backoff was created with.
func (b *Backoff) Policy() Policy { return b.policy }

// Next records a failure at now and returns the attempt number of the retry
// it calls for (1 for the first failure in a row), the delay to wait before
// that retry, and ok=true; or ok=false (and delay 0) when the Backoff gives
// up: the retry limit is exceeded (attempt > MaxRetries), the restart
// intensity is exceeded (MaxRestarts retries already granted within the last
// Within), or it had already given up.
//
// If Up was called at least ResetAfter before now (ResetAfter > 0) and no
// failure was recorded since, the attempt counter goes back to zero before
// this failure is counted. The restart intensity window is not affected by
// that reset: it exists to catch a child that stays up just long enough.
func (b *Backoff) Next(now time.Time) (attempt int, delay time.Duration, ok bool) {
	if b.gaveUp {
		return b.attempt, 0, false
	}
	p := b.policy
	if b.up && p.ResetAfter > 0 && now.Sub(b.upSince) >= p.ResetAfter {
		b.attempt = 0
	}
	b.up = false
	b.attempt++

	if !p.Unlimited && b.attempt > p.MaxRetries {
		b.gaveUp = true
		return b.attempt, 0, false
	}
	if p.MaxRestarts > 0 {
		// Keep only the retries granted within (now-Within, now].
		kept := b.restarts[:0]
		for _, t := range b.restarts {
			if now.Sub(t) < p.Within {
				kept = append(kept, t)
			}
		}
		b.restarts = kept
		if len(b.restarts) >= p.MaxRestarts {
			b.gaveUp = true
			return b.attempt, 0, false
		}
		b.restarts = append(b.restarts, now)
	}
	return b.attempt, p.Delay(b.attempt, b.rnd), true
}

// Up records that the child or connection became healthy at now. The attempt
// counter is not changed here; it is reset by the next call to Next if that
// comes at least ResetAfter later.
func (b *Backoff) Up(now time.Time) {
	b.up = true
	b.upSince = now
}

// Reset forgets everything: the attempt counter, the last Up, the restart
// intensity history and a previous give-up.
func (b *Backoff) Reset() {
	b.attempt = 0
	b.up = false
	b.upSince = time.Time{}
	b.restarts = b.restarts[:0]
	b.gaveUp = false
}

// Attempt returns the number of failures counted in the current series: 0
// before the first failure or after Reset, otherwise the attempt returned by
// the last Next. A reset due to ResetAfter is applied lazily by Next and is
// not reflected here before that.
func (b *Backoff) Attempt() int { return b.attempt }

// GaveUp reports whether Next has given up (until Reset).
func (b *Backoff) GaveUp() bool { return b.gaveUp }
