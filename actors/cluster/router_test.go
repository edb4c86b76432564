package cluster

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// The router cuts a connection's pending tokens into batches that carry
// consecutive numbers of the session and one redelivered flag, within
// MaxBatch.
func TestRouterRuns(t *testing.T) {
	r := &router{f: &Front{}, opts: FrontOptions{MaxBatch: 2, MaxBatchBytes: 1 << 20}}
	fc := &fconn{g: &grainRef{identity: "id"}, sessionKey: []byte("k")}
	for _, tok := range []struct {
		seq         uint64
		redelivered bool
	}{{5, true}, {6, true}, {7, true}, {8, false}, {9, false}, {11, false}} {
		fc.pending = append(fc.pending, []byte(fmt.Sprint(tok.seq)))
		fc.addRun(tok.seq, tok.redelivered)
	}
	var got []string
	for len(fc.pending) > 0 {
		m := r.message(fc, r.cut(fc))
		got = append(got, fmt.Sprintf("%d:%d%v%q", m.Seq, m.First, m.Redelivered, m.Tokens))
	}
	require.Equal(t, []string{
		`1:5true["5" "6"]`, `2:7true["7"]`, `3:8false["8" "9"]`, `4:11false["11"]`,
	}, got)
	require.Nil(t, fc.runs)

	// token/1: no numbers, no session; any tokens go together.
	fc = &fconn{g: &grainRef{identity: "id"}}
	for range 3 {
		fc.pending = append(fc.pending, []byte("t"))
		fc.addRun(0, false)
	}
	m := r.message(fc, r.cut(fc))
	require.Len(t, m.Tokens, 2)
	require.Nil(t, m.Session)
	require.Zero(t, m.First)

	// Within MaxBatchBytes: tokens up to exactly the bound go together, a
	// token over it goes alone, and one that would pass it waits.
	r = &router{f: &Front{}, opts: FrontOptions{MaxBatch: 10, MaxBatchBytes: 10}}
	fc = &fconn{g: &grainRef{identity: "id"}}
	for _, n := range []int{4, 4, 2, 20, 6, 5} {
		fc.pending = append(fc.pending, make([]byte, n))
		fc.addRun(0, false)
	}
	var sizes [][]int
	for len(fc.pending) > 0 {
		var batch []int
		for _, tok := range r.message(fc, r.cut(fc)).Tokens {
			batch = append(batch, len(tok))
		}
		sizes = append(sizes, batch)
	}
	require.Equal(t, [][]int{{4, 4, 2}, {20}, {6}, {5}}, sizes)
}
