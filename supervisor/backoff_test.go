package supervisor

import (
	"math/rand/v2"
	"testing"
	"time"
)

var t0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func testPolicy() Policy {
	return Policy{
		Initial:    10 * time.Millisecond,
		Max:        time.Second,
		Multiplier: 2,
		MaxRetries: 5,
		ResetAfter: time.Minute,
	}
}

type step struct {
	attempt int
	delay   time.Duration
	ok      bool
}

func expectNext(t *testing.T, b *Backoff, now time.Time, want step) {
	t.Helper()
	a, d, ok := b.Next(now)
	if got := (step{a, d, ok}); got != want {
		t.Fatalf("Next(t0+%v) = %+v, want %+v", now.Sub(t0), got, want)
	}
	if b.Attempt() != want.attempt {
		t.Fatalf("Attempt() = %d after Next, want %d", b.Attempt(), want.attempt)
	}
}

func TestBackoffSequenceAndRetryLimit(t *testing.T) {
	b := NewBackoff(testPolicy(), nil)
	if b.Attempt() != 0 || b.GaveUp() {
		t.Fatalf("fresh backoff: attempt %d, gave up %v", b.Attempt(), b.GaveUp())
	}
	now := t0
	for i, d := range []time.Duration{10, 20, 40, 80, 160} {
		expectNext(t, b, now, step{i + 1, d * time.Millisecond, true})
		now = now.Add(time.Second)
	}
	// Sixth failure: retry 6 > MaxRetries 5.
	expectNext(t, b, now, step{6, 0, false})
	if !b.GaveUp() {
		t.Fatal("GaveUp() = false after the limit")
	}
	// Giving up is sticky, even after a long stable period.
	b.Up(now)
	expectNext(t, b, now.Add(time.Hour), step{6, 0, false})

	b.Reset()
	if b.Attempt() != 0 || b.GaveUp() {
		t.Fatalf("after Reset: attempt %d, gave up %v", b.Attempt(), b.GaveUp())
	}
	expectNext(t, b, now, step{1, 10 * time.Millisecond, true})
}

func TestBackoffResetAfterStablePeriod(t *testing.T) {
	b := NewBackoff(testPolicy(), nil)
	expectNext(t, b, t0, step{1, 10 * time.Millisecond, true})
	expectNext(t, b, t0.Add(time.Second), step{2, 20 * time.Millisecond, true})

	// Up, but fails again before ResetAfter: the series continues.
	b.Up(t0.Add(2 * time.Second))
	expectNext(t, b, t0.Add(2*time.Second+time.Minute-1), step{3, 40 * time.Millisecond, true})

	// Up, and stays up exactly ResetAfter: the counter starts again at zero.
	b.Up(t0.Add(3 * time.Minute))
	if b.Attempt() != 3 {
		t.Fatalf("Attempt() = %d; Up must not reset by itself", b.Attempt())
	}
	expectNext(t, b, t0.Add(4*time.Minute), step{1, 10 * time.Millisecond, true})

	// A failure since the last Up cancels the stable period: two failures
	// in a row long after the Up keep counting.
	b.Up(t0.Add(5 * time.Minute))
	expectNext(t, b, t0.Add(10*time.Minute), step{1, 10 * time.Millisecond, true})
	expectNext(t, b, t0.Add(20*time.Minute), step{2, 20 * time.Millisecond, true})

	// The last Up counts: an early Up followed by a recent one does not reset.
	b.Up(t0.Add(30 * time.Minute))
	b.Up(t0.Add(40*time.Minute + 30*time.Second))
	expectNext(t, b, t0.Add(41*time.Minute), step{3, 40 * time.Millisecond, true})
}

func TestBackoffResetAfterZeroNeverResets(t *testing.T) {
	p := testPolicy()
	p.ResetAfter = 0
	b := NewBackoff(p, nil)
	expectNext(t, b, t0, step{1, 10 * time.Millisecond, true})
	b.Up(t0)
	expectNext(t, b, t0.Add(24*time.Hour), step{2, 20 * time.Millisecond, true})
}

func TestBackoffResetsAvoidRetryLimit(t *testing.T) {
	// A child that fails only after long stable periods is retried forever.
	p := testPolicy()
	p.MaxRetries = 1
	b := NewBackoff(p, nil)
	now := t0
	for range 100 {
		expectNext(t, b, now, step{1, 10 * time.Millisecond, true})
		b.Up(now)
		now = now.Add(time.Minute)
	}
}

func TestBackoffIntensity(t *testing.T) {
	p := testPolicy()
	p.Unlimited, p.MaxRetries = true, 0
	p.MaxRestarts, p.Within = 3, 10*time.Second
	p.ResetAfter = time.Second
	b := NewBackoff(p, nil)

	// Each failure comes after a stable period, so the attempt counter is
	// reset every time; only the intensity limit applies.
	for _, at := range []time.Duration{0, 2 * time.Second, 4 * time.Second} {
		b.Up(t0.Add(at - time.Second))
		expectNext(t, b, t0.Add(at), step{1, 10 * time.Millisecond, true})
	}
	// A fourth restart within 10s of the first is one too many.
	b.Up(t0.Add(8 * time.Second))
	expectNext(t, b, t0.Add(9*time.Second+999*time.Millisecond), step{1, 0, false})
	if !b.GaveUp() {
		t.Fatal("GaveUp() = false after intensity exceeded")
	}

	// The window slides: once the oldest restart is Within old, there is room.
	b.Reset()
	for _, at := range []time.Duration{0, 2 * time.Second, 4 * time.Second} {
		expectNext(t, b, t0.Add(at), step{b.Attempt() + 1, p.Delay(b.Attempt()+1, nil), true})
	}
	if _, _, ok := b.Next(t0.Add(10 * time.Second)); !ok {
		t.Fatal("restart at exactly Within after the oldest was refused")
	}
	if _, _, ok := b.Next(t0.Add(11 * time.Second)); ok {
		t.Fatal("4th restart within (1s, 11s] was allowed")
	}
}

func TestBackoffJitterUsesSource(t *testing.T) {
	p := testPolicy()
	p.Jitter = 0.5
	b := NewBackoff(p, rand.New(rand.NewPCG(1, 2)))
	ref := rand.New(rand.NewPCG(1, 2))
	for n := 1; n <= 5; n++ {
		_, d, ok := b.Next(t0)
		if want := p.Delay(n, ref); !ok || d != want {
			t.Fatalf("Next #%d = %v, %v; want %v", n, d, ok, want)
		}
	}
	if b.Policy() != p {
		t.Fatalf("Policy() = %+v", b.Policy())
	}
}
