package main

import (
	"math"
	"math/bits"
	"time"
)

// histogram records latencies in log-linear buckets: exact below 128 ns,
// then 64 buckets per power of two, so a percentile is within 1/64 (1.6%)
// of the truth; the maximum is exact. It is not safe for concurrent use:
// each connection has its own, merged at the end.
type histogram struct {
	counts [histBuckets]uint64
	n      uint64
	max    int64
}

const (
	histLinear  = 128 // values below are their own bucket
	histSub     = 64  // buckets per power of two above
	histBuckets = histLinear + 57*histSub
)

func histIndex(v int64) int {
	if v < histLinear {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - 7 // v>>shift is in [64, 128)
	return histLinear + (shift-1)*histSub + int(v>>shift) - histSub
}

// histUpper is the largest value that falls in bucket i.
func histUpper(i int) int64 {
	if i < histLinear {
		return int64(i)
	}
	k := i - histLinear
	shift := k/histSub + 1
	low := int64(k%histSub+histSub) << shift
	if low > math.MaxInt64-(int64(1)<<shift) {
		return math.MaxInt64
	}
	return low + int64(1)<<shift - 1
}

func (h *histogram) record(d time.Duration) {
	v := int64(d)
	h.counts[histIndex(v)]++
	h.n++
	if v > h.max {
		h.max = v
	}
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// percentile returns the value at or below which a fraction p of the
// samples fall (upper bound of its bucket, never above the maximum).
func (h *histogram) percentile(p float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(p * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(histUpper(i), h.max))
		}
	}
	return time.Duration(h.max)
}
