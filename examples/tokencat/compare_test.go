package main

import (
	"strings"
	"testing"
	"time"
)

// compare runs every target load against both servers and prints one row
// per load with a ratio; usage errors exit 2.
func TestCompareBinaryPrintsEveryLoad(t *testing.T) {
	t.Parallel()
	const maxSize = 64 << 10 // the larger loads take long under the race detector
	r := mustRun(t, 0, 3*time.Minute, "", "compare", "--duration", "100ms", "--reps", "1", "--max-size", "65536")
	if !strings.Contains(r.stdout, "load") || !strings.Contains(r.stdout, "ratio") {
		t.Fatalf("no table header:\n%s", r.stdout)
	}
	for _, c := range compareCases {
		if got := strings.Contains(r.stdout, c.name); got != (c.size <= maxSize) {
			t.Errorf("row %q shown: %v, want %v:\n%s", c.name, got, c.size <= maxSize, r.stdout)
		}
	}
	mustRun(t, exitUsage, 30*time.Second, "", "compare", "--reps", "0")
	mustRun(t, exitUsage, 30*time.Second, "", "compare", "extra")
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 3}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}
