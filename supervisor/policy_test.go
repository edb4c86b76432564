package supervisor

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestDefaultPolicy(t *testing.T) {
	p := DefaultPolicy()
	want := Policy{
		Initial:    100 * time.Millisecond,
		Max:        30 * time.Second,
		Multiplier: 2,
		Jitter:     0.2,
		MaxRetries: 10,
		ResetAfter: time.Minute,
	}
	if p != want {
		t.Fatalf("DefaultPolicy() = %+v, want %+v", p, want)
	}
	if err := p.Validate(); err != nil {
		t.Fatalf("DefaultPolicy().Validate() = %v", err)
	}
}

func TestDelayNoJitterExact(t *testing.T) {
	p := DefaultPolicy()
	want := []time.Duration{
		100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond,
		800 * time.Millisecond, 1600 * time.Millisecond, 3200 * time.Millisecond,
		6400 * time.Millisecond, 12800 * time.Millisecond, 25600 * time.Millisecond,
		30 * time.Second, 30 * time.Second, 30 * time.Second,
	}
	for i, w := range want {
		if got := p.Delay(i+1, nil); got != w {
			t.Errorf("Delay(%d, nil) = %v, want %v", i+1, got, w)
		}
	}
	// Jitter 0 gives the same sequence with a source, and does not use it.
	p.Jitter = 0
	rnd := rand.New(rand.NewPCG(1, 2))
	for i, w := range want {
		if got := p.Delay(i+1, rnd); got != w {
			t.Errorf("Jitter 0: Delay(%d) = %v, want %v", i+1, got, w)
		}
	}
	if got, want := rnd.Uint64(), rand.New(rand.NewPCG(1, 2)).Uint64(); got != want {
		t.Errorf("Jitter 0 consumed randomness")
	}
}

func TestDelaySeededExact(t *testing.T) {
	p := DefaultPolicy()
	rnd := rand.New(rand.NewPCG(1, 2))
	// Computed once from this implementation: a regression guard for the
	// exact formula and for drawing exactly one Float64 per call.
	want := []time.Duration{
		107058226, 196910897, 401367583, 777533677, 1790593503, 3057109101,
		7217344067, 11971490279, 30000000000, 27377389411, 30000000000, 30000000000,
	}
	for i, w := range want {
		if got := p.Delay(i+1, rnd); got != w {
			t.Errorf("Delay(%d) = %d, want %d", i+1, int64(got), int64(w))
		}
	}

	// The same sequence, computed independently from the definition.
	ref := rand.New(rand.NewPCG(1, 2))
	for n := 1; n <= 12; n++ {
		base := math.Min(float64(100*time.Millisecond)*math.Pow(2, float64(n-1)), float64(30*time.Second))
		d := math.Min(base*(0.8+0.4*ref.Float64()), float64(30*time.Second))
		if w := time.Duration(d); want[n-1] != w {
			t.Errorf("reference Delay(%d) = %d, table says %d", n, int64(w), int64(want[n-1]))
		}
	}
}

func TestDelayMultiplierAndCap(t *testing.T) {
	p := Policy{Initial: 10 * time.Millisecond, Max: time.Second, Multiplier: 3, MaxRetries: 1}
	want := []time.Duration{10, 30, 90, 270, 810, 1000, 1000}
	for i, w := range want {
		if got := p.Delay(i+1, nil); got != w*time.Millisecond {
			t.Errorf("Delay(%d) = %v, want %v", i+1, got, w*time.Millisecond)
		}
	}
	// Multiplier 1 is a constant delay.
	p.Multiplier = 1
	for n := 1; n < 50; n++ {
		if got := p.Delay(n, nil); got != 10*time.Millisecond {
			t.Fatalf("Multiplier 1: Delay(%d) = %v", n, got)
		}
	}
	// Attempts below 1 count as 1; huge attempts stay at the cap.
	p = DefaultPolicy()
	if got := p.Delay(0, nil); got != p.Initial {
		t.Errorf("Delay(0) = %v, want %v", got, p.Initial)
	}
	if got := p.Delay(-3, nil); got != p.Initial {
		t.Errorf("Delay(-3) = %v, want %v", got, p.Initial)
	}
	for _, n := range []int{64, 1000, math.MaxInt32, math.MaxInt} {
		if got := p.Delay(n, nil); got != p.Max {
			t.Errorf("Delay(%d) = %v, want cap %v", n, got, p.Max)
		}
		if got := p.Delay(n, rand.New(rand.NewPCG(3, 4))); got > p.Max || got < time.Duration(float64(p.Max)*0.8) {
			t.Errorf("jittered Delay(%d) = %v, want in [0.8*Max, Max]", n, got)
		}
	}
}

func TestDelayJitterBounds(t *testing.T) {
	for _, jitter := range []float64{0.1, 0.5, 1} {
		p := Policy{Initial: 100 * time.Millisecond, Max: time.Second, Multiplier: 2, Jitter: jitter, MaxRetries: 10}
		rnd := rand.New(rand.NewPCG(7, 11))
		for _, n := range []int{1, 3, 4, 5} {
			base := math.Min(float64(p.Initial)*math.Pow(2, float64(n-1)), float64(p.Max))
			lo := time.Duration(base * (1 - jitter))
			hi := time.Duration(math.Min(base*(1+jitter), float64(p.Max)))
			const samples = 20000
			minD, maxD := time.Duration(math.MaxInt64), time.Duration(0)
			var sum float64
			for range samples {
				d := p.Delay(n, rnd)
				if d < lo || d > hi {
					t.Fatalf("jitter %v attempt %d: %v outside [%v, %v]", jitter, n, d, lo, hi)
				}
				minD, maxD = min(minD, d), max(maxD, d)
				sum += float64(d)
			}
			// The samples spread over the whole interval.
			span := float64(hi - lo)
			if float64(minD-lo) > 0.01*span || float64(hi-maxD) > 0.01*span {
				t.Errorf("jitter %v attempt %d: samples in [%v, %v], want close to [%v, %v]", jitter, n, minD, maxD, lo, hi)
			}
			// Below the cap the factor is uniform around 1, so the mean is base.
			if base*(1+jitter) <= float64(p.Max) {
				if mean := sum / samples; math.Abs(mean-base) > 0.02*base {
					t.Errorf("jitter %v attempt %d: mean %v, want about %v", jitter, n, time.Duration(mean), time.Duration(base))
				}
			}
		}
	}
}

func TestValidate(t *testing.T) {
	ok := DefaultPolicy()
	tests := []struct {
		name   string
		mutate func(*Policy)
		fields []string // nil: valid
	}{
		{"default", func(*Policy) {}, nil},
		{"unlimited", func(p *Policy) { p.MaxRetries, p.Unlimited = 0, true }, nil},
		{"no jitter, no reset", func(p *Policy) { p.Jitter, p.ResetAfter = 0, 0 }, nil},
		{"full jitter", func(p *Policy) { p.Jitter = 1 }, nil},
		{"intensity", func(p *Policy) { p.MaxRestarts, p.Within = 5, time.Minute }, nil},
		{"Initial = Max", func(p *Policy) { p.Max = p.Initial }, nil},
		{"multiplier 1", func(p *Policy) { p.Multiplier = 1 }, nil},
		{"zero initial", func(p *Policy) { p.Initial = 0 }, []string{"Initial"}},
		{"negative initial", func(p *Policy) { p.Initial = -time.Second }, []string{"Initial"}},
		{"max below initial", func(p *Policy) { p.Max = p.Initial - 1 }, []string{"Max"}},
		{"multiplier below 1", func(p *Policy) { p.Multiplier = 0.5 }, []string{"Multiplier"}},
		{"multiplier NaN", func(p *Policy) { p.Multiplier = math.NaN() }, []string{"Multiplier"}},
		{"multiplier Inf", func(p *Policy) { p.Multiplier = math.Inf(1) }, []string{"Multiplier"}},
		{"jitter negative", func(p *Policy) { p.Jitter = -0.1 }, []string{"Jitter"}},
		{"jitter above 1", func(p *Policy) { p.Jitter = 1.5 }, []string{"Jitter"}},
		{"jitter NaN", func(p *Policy) { p.Jitter = math.NaN() }, []string{"Jitter"}},
		{"zero retries, limited", func(p *Policy) { p.MaxRetries = 0 }, []string{"MaxRetries"}},
		{"negative retries", func(p *Policy) { p.MaxRetries = -1 }, []string{"MaxRetries"}},
		{"retries with unlimited", func(p *Policy) { p.Unlimited = true }, []string{"MaxRetries"}},
		{"negative reset", func(p *Policy) { p.ResetAfter = -1 }, []string{"ResetAfter"}},
		{"negative restarts", func(p *Policy) { p.MaxRestarts = -1 }, []string{"MaxRestarts"}},
		{"restarts without window", func(p *Policy) { p.MaxRestarts = 3 }, []string{"Within"}},
		{"negative window", func(p *Policy) { p.Within = -1 }, []string{"Within"}},
		{"zero policy", func(p *Policy) { *p = Policy{} }, []string{"Initial", "Multiplier", "MaxRetries"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := ok
			tt.mutate(&p)
			err := p.Validate()
			if tt.fields == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("Validate() = %v, want ErrInvalidPolicy", err)
			}
			var pe *PolicyError
			if !errors.As(err, &pe) || pe.Field != tt.fields[0] {
				t.Fatalf("Validate() = %v, want a *PolicyError for %s first", err, tt.fields[0])
			}
			var got []string
			for _, e := range flatten(err) {
				if errors.As(e, &pe) {
					got = append(got, pe.Field)
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.fields, ",") {
				t.Fatalf("fields %v, want %v (err: %v)", got, tt.fields, err)
			}
			if msg := err.Error(); !strings.Contains(msg, "invalid policy") || !strings.Contains(msg, tt.fields[0]) {
				t.Errorf("message %q does not name the problem", msg)
			}
		})
	}
}

// Each PolicyError names the value it refuses, as the field holds it.
func TestValidateNamesTheValue(t *testing.T) {
	for _, tt := range []struct {
		mutate func(*Policy)
		field  string
		value  string
	}{
		{func(p *Policy) { p.Multiplier = 0.75 }, "Multiplier", "got 0.75"},
		{func(p *Policy) { p.Jitter = 1.25 }, "Jitter", "got 1.25"},
		{func(p *Policy) { p.Jitter = -0.125 }, "Jitter", "got -0.125"},
		{func(p *Policy) { p.Initial = -1500 * time.Millisecond }, "Initial", "got -1.5s"},
		{func(p *Policy) { p.MaxRetries = -7 }, "MaxRetries", "got -7"},
	} {
		p := DefaultPolicy()
		tt.mutate(&p)
		var pe *PolicyError
		if err := p.Validate(); !errors.As(err, &pe) || pe.Field != tt.field || !strings.HasSuffix(pe.Reason, tt.value) {
			t.Errorf("Validate() = %v, want a *PolicyError for %s ending %q", err, tt.field, tt.value)
		}
	}
}

// A policy whose Max is the largest Duration caps its delays there, never
// at a negative value (a float64 of 2^63 does not convert to an int64).
func TestDelayAtTheLargestMax(t *testing.T) {
	p := Policy{Initial: time.Hour, Max: math.MaxInt64, Multiplier: 2, Jitter: 0.5, MaxRetries: 1}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := p.Delay(1000, nil); got != p.Max {
		t.Errorf("Delay(1000, nil) = %v, want %v", got, p.Max)
	}
	rnd := rand.New(rand.NewPCG(5, 6))
	for range 1000 {
		if got := p.Delay(1000, rnd); got <= 0 || got > p.Max {
			t.Fatalf("jittered Delay(1000) = %v, want in (0, %v]", got, p.Max)
		}
	}
}

func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
