package wire

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"unsafe"
)

// refEncode is a byte-at-a-time reference encoder.
func refEncode(token []byte) []byte {
	var out []byte
	for _, c := range token {
		switch c {
		case '\\':
			out = append(out, '\\', '\\')
		case '\n':
			out = append(out, '\\', 'n')
		default:
			out = append(out, c)
		}
	}
	return append(out, '\n')
}

// refDecode is a byte-at-a-time reference decoder with the same semantics as
// Decoder, including the limit rule (decoded bytes plus a pending backslash
// never exceed limit) and error offsets. It returns the frames before the
// first error, the error, and the number of bytes consumed by complete frames.
func refDecode(stream []byte, limit int) ([]Frame, error) {
	var frames []Frame
	cur := []byte{}
	pending := false
	for i, c := range stream {
		off := int64(i)
		if pending {
			pending = false
			switch c {
			case '\\':
				cur = append(cur, '\\')
			case 'n':
				cur = append(cur, '\n')
			case '\n':
				if len(cur) == 0 {
					frames = append(frames, Frame{Kind: KindRemoteClose})
					continue
				}
				return frames, &InvalidEscapeError{Offset: off, Byte: c}
			default:
				return frames, &InvalidEscapeError{Offset: off, Byte: c}
			}
			continue
		}
		switch c {
		case '\n':
			frames = append(frames, Frame{Kind: KindToken, Token: cur})
			cur = []byte{}
		case '\\':
			if len(cur)+1 > limit {
				return frames, &TokenTooLargeError{Limit: limit, Offset: off}
			}
			pending = true
		default:
			if len(cur)+1 > limit {
				return frames, &TokenTooLargeError{Limit: limit, Offset: off}
			}
			cur = append(cur, c)
		}
	}
	return frames, nil
}

// decodeChunks feeds stream to a fresh decoder in chunks cut at the given
// increasing cut points and checks the decoder's invariants on the way.
//
// It decodes the stream twice, with AppendFrames and with
// AppendFramesInPlace, and checks that both give the same frames and error.
func decodeChunks(t testing.TB, stream []byte, limit int, cuts []int) ([]Frame, error) {
	t.Helper()
	frames, err := decodeChunksMode(t, stream, limit, cuts, false, false)
	inPlace, errInPlace := decodeChunksMode(t, stream, limit, cuts, true, false)
	check.Equal(t, err, errInPlace, "AppendFramesInPlace's error")
	requireFramesEqual(t, frames, inPlace)
	sourced, errSourced := decodeChunksMode(t, stream, limit, cuts, true, true)
	check.Equal(t, err, errSourced, "the error with a BufferSource")
	requireFramesEqual(t, frames, sourced)
	return frames, err
}

// junkBuffer is a BufferSource's get that gives buffers larger than asked
// and not empty, their bytes all 0x5A: a decoder must start them empty and
// never let their old bytes show.
func junkBuffer(n int) []byte {
	b := bytes.Repeat([]byte{0x5A}, n+7)
	return b[:3]
}

func decodeChunksMode(t testing.TB, stream []byte, limit int, cuts []int, inPlace, source bool) ([]Frame, error) {
	t.Helper()
	d, err := NewDecoder(limit)
	check.NoError(t, err)
	if source {
		d.SetBufferSource(junkBuffer)
	}
	var frames []Frame
	prev := 0
	for _, c := range append(cuts, len(stream)) {
		chunk := bytes.Clone(stream[prev:c])
		n := len(frames)
		if inPlace {
			frames, err = d.AppendFramesInPlace(frames, chunk)
		} else {
			frames, err = d.AppendFrames(frames, chunk)
		}
		for _, f := range frames[n:] {
			checkFrame(t, f, limit)
		}
		// ChunkKept must say so whenever a token of this call aliases it.
		if !d.ChunkKept() {
			for _, f := range frames[n:] {
				if aliases(f.Token, chunk) {
					t.Fatalf("ChunkKept is false, but a token aliases chunk %q", chunk)
				}
			}
		}
		// Tokens may alias their chunk; copy those, then scribble over the
		// chunk. The decoder must not have kept a reference to it, so later
		// frames and the allocated tokens are unaffected.
		for j := n; j < len(frames); j++ {
			if aliases(frames[j].Token, chunk) {
				frames[j].Token = bytes.Clone(frames[j].Token)
			}
		}
		for i := range chunk {
			chunk[i] = 0xAA
		}
		check.LessOrEqual(t, d.Buffered(), limit)
		if err != nil {
			check.Zero(t, d.Buffered())
			return frames, err
		}
		prev = c
	}
	return frames, nil
}

func checkFrame(t testing.TB, f Frame, limit int) {
	t.Helper()
	switch f.Kind {
	case KindToken:
		check.NotNil(t, f.Token)
		check.Equal(t, len(f.Token), cap(f.Token))
		check.LessOrEqual(t, len(f.Token), limit)
	case KindRemoteClose:
		check.Nil(t, f.Token)
	default:
		t.Fatalf("bad kind %v", f.Kind)
	}
}

// aliases reports whether a and b share memory.
func aliases(a, b []byte) bool {
	if cap(a) == 0 || cap(b) == 0 {
		return false
	}
	a0, a1 := uintptr(unsafe.Pointer(unsafe.SliceData(a))), uintptr(unsafe.Pointer(unsafe.SliceData(a)))+uintptr(cap(a))
	b0, b1 := uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(unsafe.Pointer(unsafe.SliceData(b)))+uintptr(cap(b))
	return a0 < b1 && b0 < a1
}

// randomCuts returns sorted random cut points in (0, n).
func randomCuts(r *rand.Rand, n int) []int {
	if n < 2 {
		return nil
	}
	k := r.IntN(8)
	if r.IntN(4) == 0 {
		k = r.IntN(n)
	}
	seen := map[int]bool{}
	var cuts []int
	for range k {
		c := 1 + r.IntN(n-1)
		if !seen[c] {
			seen[c] = true
			cuts = append(cuts, c)
		}
	}
	sortInts(cuts)
	return cuts
}

func sortInts(a []int) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

// everyByte returns the cut points 1..n-1.
func everyByte(n int) []int {
	var cuts []int
	for i := 1; i < n; i++ {
		cuts = append(cuts, i)
	}
	return cuts
}

// randomToken returns a token drawn from a mix of shapes: text, uniform
// binary, escape-heavy bytes, and the empty token.
func randomToken(r *rand.Rand, maxLen int) []byte {
	n := r.IntN(maxLen + 1)
	tok := make([]byte, n)
	switch r.IntN(4) {
	case 0:
		for i := range tok {
			tok[i] = byte('a' + r.IntN(26))
		}
	case 1:
		for i := range tok {
			tok[i] = byte(r.Uint32())
		}
	case 2:
		alphabet := []byte{'\\', '\n', 'n', 'x', 0}
		for i := range tok {
			tok[i] = alphabet[r.IntN(len(alphabet))]
		}
	case 3:
		tok = tok[:0]
	}
	return tok
}

func requireFramesEqual(t testing.TB, want, got []Frame) {
	t.Helper()
	check.Len(t, got, len(want))
	for i := range want {
		check.Equal(t, want[i].Kind, got[i].Kind, "frame %d", i)
		if want[i].Kind == KindToken {
			check.Equal(t, want[i].Token, got[i].Token, "frame %d", i)
		}
	}
}
