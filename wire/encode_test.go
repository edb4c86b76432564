package wire

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

func TestAppendTokenMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for iter := range 5000 {
		tok := randomToken(r, []int{8, 100, 3000}[iter%3])
		// Sprinkle specials at varying densities to exercise both the
		// search-based and the table-based paths.
		if len(tok) > 0 && iter%5 == 0 {
			for range r.IntN(len(tok)/8 + 1) {
				tok[r.IntN(len(tok))] = []byte{'\\', '\n'}[r.IntN(2)]
			}
		}
		want := refEncode(tok)
		check.Equal(t, want, AppendToken(nil, tok))
		check.Equal(t, len(want), EncodedLen(tok))
		check.Equal(t, want, escapeWith(tok, false))
		check.Equal(t, want, escapeWith(tok, true))
		short := make([]byte, len(want))
		check.Equal(t, want[:len(want)-1], short[:escapeShort(short, tok)])
	}
}

// escapeWith encodes tok with one of the two escaping loops.
func escapeWith(tok []byte, dense bool) []byte {
	out := make([]byte, EncodedLen(tok))
	var w int
	if dense {
		w = escapeDense(out, tok)
	} else {
		w = escapeSparse(out, tok, bytes.Count(tok, escapeSep), bytes.Count(tok, endSep))
	}
	out[w] = '\n'
	return out[:w+1]
}

func TestAppendTokenKeepsPrefix(t *testing.T) {
	for _, tok := range []string{"", "abc", "a\nb\\c", "\\\\\\\n\n\n"} {
		dst := make([]byte, 3, 5)
		copy(dst, "pre")
		got := AppendToken(dst, []byte(tok))
		check.Equal(t, append([]byte("pre"), refEncode([]byte(tok))...), got)
		check.Equal(t, []byte("pre"), dst)
	}
}

func TestAppendTokenGrowsOnce(t *testing.T) {
	toks := [][]byte{
		bytes.Repeat([]byte("x"), 1000),
		bytes.Repeat([]byte("x\\y\nz"), 200),
		bytes.Repeat([]byte("\n"), 1000),
	}
	for _, tok := range toks {
		allocs := testing.AllocsPerRun(50, func() { _ = AppendToken(nil, tok) })
		check.Equal(t, 1.0, allocs)
		buf := make([]byte, 0, EncodedLen(tok))
		allocs = testing.AllocsPerRun(50, func() { buf = AppendToken(buf[:0], tok) })
		check.Equal(t, 0.0, allocs)
		check.Equal(t, len(buf), cap(buf))
	}
}

func TestAppendRemoteClose(t *testing.T) {
	check.Equal(t, []byte{0x5c, 0x0a}, AppendRemoteClose(nil))
	check.Equal(t, []byte{'a', 0x5c, 0x0a}, AppendRemoteClose([]byte("a")))
	// A token that is one backslash is not the control frame.
	check.Equal(t, []byte{0x5c, 0x5c, 0x0a}, AppendToken(nil, []byte{0x5c}))
}

func TestEncodedLenWorstCase(t *testing.T) {
	for _, n := range []int{0, 1, 7, 1000} {
		check.Equal(t, 2*n+1, EncodedLen(bytes.Repeat([]byte{'\\'}, n)))
		check.Equal(t, 2*n+1, EncodedLen(bytes.Repeat([]byte{'\n'}, n)))
		check.Equal(t, n+1, EncodedLen(bytes.Repeat([]byte{'n'}, n)))
	}
}

// TestAppendTokenShortWithRoom: a short token appended where the buffer has
// room for every byte escaped takes the one-pass path; its frame is the
// reference's, the prefix is kept, and nothing past the frame is written.
// With a byte less of room (or two), the frame is the same, in place when
// it fits.
func TestAppendTokenShortWithRoom(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for i := range 8000 {
		tok := randomToken(r, r.IntN(shortToken+2))
		for range r.IntN(4) {
			if len(tok) > 0 {
				tok[r.IntN(len(tok))] = []byte{'\\', '\n'}[r.IntN(2)]
			}
		}
		room := 2*len(tok) + []int{-1, 0, 1, 9}[i%4]
		want := refEncode(tok)
		buf := bytes.Repeat([]byte{0xEE}, 3+max(room, 0))
		copy(buf, "pre")
		got := AppendToken(buf[:3], tok)
		check.Equal(t, append([]byte("pre"), want...), got)
		if len(want) > room {
			continue // it grew
		}
		check.Equal(t, &buf[0], &got[0], "appended in place")
		for j := 3 + len(want); j < len(buf); j++ {
			if buf[j] != 0xEE {
				t.Fatalf("token %q: byte %d past the frame was written", tok, j)
			}
		}
	}
}

// appendInPieces appends the frame of tok encoded in pieces of size bytes
// of tok (the last one shorter) with pe, checking that no piece but the
// last ends a frame.
func appendInPieces(pe PieceEncoder, dst, tok []byte, size int) []byte {
	for start := 0; ; start += size {
		end := min(start+size, len(tok))
		last := end == len(tok)
		n := len(dst)
		dst = pe.AppendTokenPiece(dst, tok[start:end], last)
		if !last && bytes.IndexByte(dst[n:], frameEnd) >= 0 {
			panic("a piece that is not the last holds a newline")
		}
		if last {
			return dst
		}
	}
}

// A token escaped in pieces of any size is the frame AppendToken gives, a
// frame begun is not whole for WholeFrames, and the empty token's one
// piece is its frame.
func TestAppendTokenPiece(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	pe, ok := Token1.(PieceEncoder)
	check.True(t, ok, "Token1 is not a PieceEncoder")
	check.Equal(t, []byte("\n"), AppendTokenPiece(nil, []byte{}, true))
	check.Empty(t, AppendTokenPiece(nil, nil, false))
	for iter := range 500 {
		tok := append(randomToken(r, []int{100, 3000, 70000}[iter%3]), 'z')
		for range r.IntN(len(tok)/4 + 1) {
			tok[r.IntN(len(tok))] = []byte{'\\', '\n'}[r.IntN(2)]
		}
		want := AppendToken([]byte("x\n"), tok)
		size := 1 + r.IntN(len(tok))
		got := appendInPieces(pe, []byte("x\n"), tok, size)
		check.Equal(t, want, got, "token of %d bytes in pieces of %d", len(tok), size)
		first := AppendTokenPiece(nil, tok[:size/2], false)
		end, tokens := Token1.WholeFrames(append([]byte("x\n"), first...))
		check.Equal(t, 2, end, "a frame begun counted as whole")
		check.Equal(t, 1, tokens)
	}
}
