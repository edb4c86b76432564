package wire

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestNewDecoder(t *testing.T) {
	for _, n := range []int{0, -1, -1 << 40} {
		d, err := NewDecoder(n)
		check.True(t, err == ErrInvalidLimit, "limit %d: %v", n, err)
		check.True(t, d == nil)
	}
	d, err := NewDecoder(DefaultMaxTokenSize)
	check.NoError(t, err)
	check.Equal(t, DefaultMaxTokenSize, d.MaxTokenSize())
	check.Zero(t, d.Buffered())
}

// encodeStream encodes tokens into one stream; a nil token stands for a
// remoteClose frame.
func encodeStream(tokens [][]byte) []byte {
	var s []byte
	for _, tok := range tokens {
		if tok == nil {
			s = AppendRemoteClose(s)
		} else {
			s = AppendToken(s, tok)
		}
	}
	return s
}

func framesFor(tokens [][]byte) []Frame {
	var fs []Frame
	for _, tok := range tokens {
		if tok == nil {
			fs = append(fs, Frame{Kind: KindRemoteClose})
		} else {
			fs = append(fs, Frame{Kind: KindToken, Token: tok})
		}
	}
	return fs
}

func randomTokens(r *rand.Rand, n, maxLen int) [][]byte {
	var toks [][]byte
	for range n {
		if r.IntN(10) == 0 {
			toks = append(toks, nil)
		} else {
			toks = append(toks, randomToken(r, maxLen))
		}
	}
	return toks
}

func TestRoundTripRandomChunks(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for iter := range 2000 {
		toks := randomTokens(r, 1+r.IntN(20), []int{4, 64, 1024}[iter%3])
		stream := encodeStream(toks)
		frames, err := decodeChunks(t, stream, DefaultMaxTokenSize, randomCuts(r, len(stream)))
		check.NoError(t, err)
		requireFramesEqual(t, framesFor(toks), frames)
	}
}

func TestRoundTripOneByteAtATime(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		toks := randomTokens(r, 1+r.IntN(10), 100)
		stream := encodeStream(toks)
		frames, err := decodeChunks(t, stream, DefaultMaxTokenSize, everyByte(len(stream)))
		check.NoError(t, err)
		requireFramesEqual(t, framesFor(toks), frames)
	}
}

func TestSeveralFramesOneChunkInOrder(t *testing.T) {
	toks := [][]byte{
		[]byte("first"), {}, []byte("with\nnewline"), nil, []byte(`back\slash`),
		[]byte("\\"), []byte("\\\n"), []byte("last"),
	}
	stream := encodeStream(toks)
	d, err := NewDecoder(DefaultMaxTokenSize)
	check.NoError(t, err)
	frames, err := d.AppendFrames([]Frame{{Kind: KindToken, Token: []byte("kept")}}, stream)
	check.NoError(t, err)
	requireFramesEqual(t, append([]Frame{{Kind: KindToken, Token: []byte("kept")}}, framesFor(toks)...), frames)
	check.Zero(t, d.Buffered())
}

func TestEmptyChunk(t *testing.T) {
	d, err := NewDecoder(10)
	check.NoError(t, err)
	frames, err := d.AppendFrames(nil, nil)
	check.NoError(t, err)
	check.Empty(t, frames)
	frames, err = d.AppendFrames(nil, []byte("ab"))
	check.NoError(t, err)
	check.Empty(t, frames)
	frames, err = d.AppendFrames(frames, []byte{})
	check.NoError(t, err)
	check.Empty(t, frames)
	frames, err = d.AppendFrames(frames, []byte("\n"))
	check.NoError(t, err)
	requireFramesEqual(t, []Frame{{Kind: KindToken, Token: []byte("ab")}}, frames)
}

func TestZeroAllocEscapeFree(t *testing.T) {
	var stream []byte
	for i := range 32 {
		stream = AppendToken(stream, bytes.Repeat([]byte{'a' + byte(i%26)}, i*7))
	}
	stream = AppendRemoteClose(stream)
	d, err := NewDecoder(DefaultMaxTokenSize)
	check.NoError(t, err)
	frames := make([]Frame, 0, 64)
	allocs := testing.AllocsPerRun(100, func() {
		var err error
		frames, err = d.AppendFrames(frames[:0], stream)
		if err != nil || len(frames) != 33 {
			t.Fatalf("got %d frames, %v", len(frames), err)
		}
	})
	check.Equal(t, 0.0, allocs)
}

func TestSubSlice(t *testing.T) {
	chunk := []byte("hello\nwor\\\\ld\n\nsplit")
	d, err := NewDecoder(DefaultMaxTokenSize)
	check.NoError(t, err)
	frames, err := d.AppendFrames(nil, chunk)
	check.NoError(t, err)
	check.Len(t, frames, 3)

	// Escape-free and wholly inside the chunk: a sub-slice, capped.
	hello := frames[0].Token
	check.Equal(t, []byte("hello"), hello)
	check.True(t, &hello[0] == &chunk[0], "not a sub-slice of the chunk")
	check.Equal(t, len(hello), cap(hello))
	check.Equal(t, []byte("hello!"), append(hello, '!'))
	check.Equal(t, []byte("hello\nwor"), chunk[:9], "append overwrote the chunk")

	// With escapes: allocated.
	check.Equal(t, []byte(`wor\ld`), frames[1].Token)
	check.False(t, aliases(frames[1].Token, chunk))
	check.Equal(t, len(frames[1].Token), cap(frames[1].Token))

	// Empty token: non-nil, empty.
	check.NotNil(t, frames[2].Token)
	check.Len(t, frames[2].Token, 0)

	// Spanning chunks: allocated, and the first chunk is not retained.
	check.Equal(t, 5, d.Buffered())
	copy(chunk, bytes.Repeat([]byte{'X'}, len(chunk)))
	second := []byte("ted\n")
	frames, err = d.AppendFrames(frames[:0], second)
	check.NoError(t, err)
	check.Equal(t, []byte("splitted"), frames[0].Token)
	check.False(t, aliases(frames[0].Token, second))
	check.Equal(t, len(frames[0].Token), cap(frames[0].Token))
}

func TestLimit(t *testing.T) {
	const limit = 8
	cases := []struct {
		name  string
		token string
		ok    bool
	}{
		{"empty", "", true},
		{"under", "1234567", true},
		{"at", "12345678", true},
		{"over", "123456789", false},
		{"at with escapes", "\\2\n45\\7\n", true},
		{"over with escapes", "\\2\n45\\7\n9", false},
		{"over by escape", "1234567\n\n", false},
		{"at by escape", "1234567\n", true},
		{"all escapes at", "\\\\\\\\\\\\\\\\", true},
		{"all escapes over", "\\\\\\\\\\\\\\\\\n", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			stream := AppendToken(nil, []byte(c.token))
			stream = AppendToken(stream, []byte("next"))
			for _, cuts := range [][]int{nil, everyByte(len(stream)), {len(stream) / 2}} {
				frames, err := decodeChunks(t, stream, limit, cuts)
				if c.ok {
					check.NoError(t, err)
					requireFramesEqual(t, framesFor([][]byte{[]byte(c.token), []byte("next")}), frames)
					continue
				}
				check.ErrorIs(t, err, ErrTokenTooLarge)
				check.Empty(t, frames)
				var tl *TokenTooLargeError
				check.True(t, errors.As(err, &tl))
				check.Equal(t, limit, tl.Limit)
				// The first input byte of decoded byte limit+1.
				check.Equal(t, int64(len(AppendToken(nil, []byte(c.token[:limit])))-1), tl.Offset)
			}
		})
	}
}

func TestLimitPendingBackslashAtLimit(t *testing.T) {
	// Eight decoded bytes and then a backslash: the frame in progress is
	// over the limit whatever follows, and the decoder fails at once.
	d, err := NewDecoder(8)
	check.NoError(t, err)
	_, err = d.AppendFrames(nil, []byte("12345678"))
	check.NoError(t, err)
	check.Equal(t, 8, d.Buffered())
	_, err = d.AppendFrames(nil, []byte("\\"))
	var tl *TokenTooLargeError
	check.True(t, errors.As(err, &tl), "%v", err)
	check.Equal(t, TokenTooLargeError{Limit: 8, Offset: 8}, *tl)
	check.Zero(t, d.Buffered())

	// The remoteClose frame fits every limit.
	d, err = NewDecoder(1)
	check.NoError(t, err)
	frames, err := d.AppendFrames(nil, []byte("\\\n\\\\\nx\n\\"))
	check.NoError(t, err)
	requireFramesEqual(t, framesFor([][]byte{nil, []byte("\\"), []byte("x")}), frames)
	check.Equal(t, 1, d.Buffered())
	frames, err = d.AppendFrames(frames[:0], []byte("\n"))
	check.NoError(t, err)
	requireFramesEqual(t, framesFor([][]byte{nil}), frames)
}

func TestOverLimitWithoutNewlineFailsEarly(t *testing.T) {
	const limit = 1000
	for _, fill := range []string{"a", "\\n", "a\\\\"} {
		d, err := NewDecoder(limit)
		check.NoError(t, err)
		chunk := []byte(strings.Repeat(fill, 100/len(fill)+1)[:99])
		var fed int64
		for fed < 10*limit {
			_, err = d.AppendFrames(nil, chunk)
			check.LessOrEqual(t, d.Buffered(), limit)
			fed += int64(len(chunk))
			if err != nil {
				break
			}
		}
		check.ErrorIs(t, err, ErrTokenTooLarge, "fill %q", fill)
		// It failed with the chunk that went over, not later.
		stream := bytes.Repeat(chunk, int(fed)/len(chunk))
		_, wantErr := refDecode(stream, limit)
		check.Equal(t, wantErr, err)
		check.True(t, fed-int64(len(chunk)) <= wantErr.(*TokenTooLargeError).Offset, "failed late")
		check.Zero(t, d.Buffered())
	}
}

func TestBufferedNeverExceedsLimit(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 300 {
		limit := 1 + r.IntN(64)
		stream := encodeStream(randomTokens(r, 10, 100))
		d, err := NewDecoder(limit)
		check.NoError(t, err)
		for _, b := range stream {
			if _, err = d.AppendFrames(nil, []byte{b}); err != nil {
				break
			}
			check.LessOrEqual(t, d.Buffered(), limit)
			check.LessOrEqual(t, cap(d.buf), limit)
		}
	}
}

func TestStickyError(t *testing.T) {
	d, err := NewDecoder(DefaultMaxTokenSize)
	check.NoError(t, err)
	frames, err := d.AppendFrames(nil, []byte("ok\nbad\\x\nnever\n"))
	check.ErrorIs(t, err, ErrInvalidEscape)
	requireFramesEqual(t, framesFor([][]byte{[]byte("ok")}), frames)
	first := err
	for _, chunk := range [][]byte{[]byte("fine\n"), nil, []byte("\\\n")} {
		got, err := d.AppendFrames(frames, chunk)
		check.True(t, err == first, "error changed: %v", err)
		requireFramesEqual(t, framesFor([][]byte{[]byte("ok")}), got)
		check.Zero(t, d.Buffered())
	}
}

func TestErrorOffset(t *testing.T) {
	cases := []struct {
		stream string
		cuts   []int
		want   InvalidEscapeError
	}{
		{"abc\\x\n", nil, InvalidEscapeError{Offset: 4, Byte: 'x'}},
		{"abc\\x\n", []int{4}, InvalidEscapeError{Offset: 4, Byte: 'x'}},
		{"abc\\x\n", []int{3}, InvalidEscapeError{Offset: 4, Byte: 'x'}},
		{"ok\n\\\\ok\nabc\\\n", nil, InvalidEscapeError{Offset: 12, Byte: '\n'}},
		{"ok\n\\\\ok\nabc\\\n", []int{1, 5, 9, 12}, InvalidEscapeError{Offset: 12, Byte: '\n'}},
		{"\\\\\\\n", []int{3}, InvalidEscapeError{Offset: 3, Byte: '\n'}},
		{"\\\n\\\t", []int{2}, InvalidEscapeError{Offset: 3, Byte: '\t'}},
	}
	for _, c := range cases {
		_, err := decodeChunks(t, []byte(c.stream), DefaultMaxTokenSize, c.cuts)
		var ie *InvalidEscapeError
		check.True(t, errors.As(err, &ie), "%q: %v", c.stream, err)
		check.Equal(t, c.want, *ie, "%q cut at %v", c.stream, c.cuts)
	}
}

func TestErrorsIsAs(t *testing.T) {
	var err error = &InvalidEscapeError{Offset: 5, Byte: 'x'}
	check.True(t, errors.Is(err, ErrInvalidEscape))
	check.False(t, errors.Is(err, ErrTokenTooLarge))
	check.Equal(t, `wire: invalid escape \x78 at offset 5`, err.Error())
	var ie *InvalidEscapeError
	check.True(t, errors.As(err, &ie))
	check.Equal(t, int64(5), ie.Offset)

	err = &TokenTooLargeError{Limit: 10, Offset: 12}
	check.True(t, errors.Is(err, ErrTokenTooLarge))
	check.False(t, errors.Is(err, ErrInvalidEscape))
	check.True(t, strings.HasPrefix(err.Error(), "wire: token too large"), err.Error())
	var tl *TokenTooLargeError
	check.True(t, errors.As(err, &tl))
	check.Equal(t, 10, tl.Limit)

	// Wrapped, as a caller would.
	wrapped := errors.Join(errors.New("conn 7"), err)
	check.True(t, errors.Is(wrapped, ErrTokenTooLarge))
	check.True(t, errors.As(wrapped, &tl))
}

// TestAgainstReference compares the decoder with the byte-at-a-time reference
// on random streams, valid or not, with random limits and random chunking:
// frames, errors and error offsets must not depend on where chunks are cut.
func TestAgainstReference(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	alphabet := []byte{'\\', '\n', 'n', 'a', 'x', 0}
	for iter := range 5000 {
		var stream []byte
		if iter%2 == 0 {
			stream = encodeStream(randomTokens(r, 1+r.IntN(6), 40))
			// Corrupt a byte now and then.
			if len(stream) > 0 && r.IntN(2) == 0 {
				stream[r.IntN(len(stream))] = alphabet[r.IntN(len(alphabet))]
			}
		} else {
			stream = make([]byte, r.IntN(60))
			for i := range stream {
				stream[i] = alphabet[r.IntN(len(alphabet))]
			}
		}
		limit := 1 + r.IntN(48)
		if r.IntN(4) == 0 {
			limit = DefaultMaxTokenSize
		}
		want, wantErr := refDecode(stream, limit)
		got, err := decodeChunks(t, stream, limit, randomCuts(r, len(stream)))
		check.Equal(t, wantErr, err, "stream %q limit %d", stream, limit)
		requireFramesEqual(t, want, got)
	}
}

func TestFrameKindString(t *testing.T) {
	check.Equal(t, "token", KindToken.String())
	check.Equal(t, "remoteClose", KindRemoteClose.String())
	check.Equal(t, "FrameKind(7)", FrameKind(7).String())
	check.Equal(t, "FrameKind(255)", FrameKind(255).String())
}

func TestLargeTokenSpanningChunks(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	tok := make([]byte, 1<<20)
	for i := range tok {
		tok[i] = byte(r.Uint32())
	}
	stream := AppendToken(nil, tok)
	stream = AppendToken(stream, []byte("small"))
	stream = AppendToken(stream, []byte("sm\\all"))
	for _, step := range []int{1000, 4096, 65537} {
		var cuts []int
		for c := step; c < len(stream); c += step {
			cuts = append(cuts, c)
		}
		frames, err := decodeChunks(t, stream, len(tok), cuts)
		check.NoError(t, err)
		requireFramesEqual(t, framesFor([][]byte{tok, []byte("small"), []byte("sm\\all")}), frames)
	}
}

// AppendFramesInPlace decodes escaped tokens over their own bodies: they
// alias the chunk, and a chunk of whole frames costs no allocation.
func TestAppendFramesInPlaceAliasesAndDoesNotAllocate(t *testing.T) {
	stream := []byte("a\\\\b\\nc\nplain\n\\\n")
	d, err := NewDecoder(DefaultMaxTokenSize)
	check.NoError(t, err)
	chunk := bytes.Clone(stream)
	frames, err := d.AppendFramesInPlace(nil, chunk)
	check.NoError(t, err)
	check.Len(t, frames, 3)
	check.Equal(t, []byte("a\\b\nc"), frames[0].Token)
	check.True(t, aliases(frames[0].Token, chunk), "the escaped token is decoded in place")
	check.Equal(t, len(frames[0].Token), cap(frames[0].Token))
	check.Equal(t, []byte("plain"), frames[1].Token)
	check.Equal(t, KindRemoteClose, frames[2].Kind)

	dst := make([]Frame, 0, 8)
	allocs := testing.AllocsPerRun(100, func() {
		copy(chunk, stream)
		if _, err := d.AppendFramesInPlace(dst[:0], chunk); err != nil {
			t.Fatal(err)
		}
	})
	check.Equal(t, 0.0, allocs, "allocations per chunk")
}

func TestChunkKept(t *testing.T) {
	for _, tc := range []struct {
		name    string
		chunks  []string
		inPlace bool
		kept    []bool // after each chunk
	}{
		{"token inside the chunk", []string{"abc\n"}, false, []bool{true}},
		{"escaped token decoded in place", []string{"a\\nb\n"}, true, []bool{true}},
		{"escaped token copied out", []string{"a\\nb\n"}, false, []bool{false}},
		{"frame spanning chunks", []string{"ab", "cd", "ef\n"}, true, []bool{false, false, false}},
		{"a spanning frame ends, a whole one follows", []string{"ab", "c\nxyz\n"}, true, []bool{false, true}},
		{"remoteClose only", []string{"\\\n"}, true, []bool{false}},
		{"empty chunk", []string{""}, true, []bool{false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := NewDecoder(DefaultMaxTokenSize)
			check.NoError(t, err)
			for i, c := range tc.chunks {
				chunk := []byte(c)
				if tc.inPlace {
					_, err = d.AppendFramesInPlace(nil, chunk)
				} else {
					_, err = d.AppendFrames(nil, chunk)
				}
				check.NoError(t, err)
				check.Equal(t, tc.kept[i], d.ChunkKept(), "after chunk %d (%q)", i, c)
			}
		})
	}
}

// Dense bodies (an escape every few bytes, decoded byte by byte) decode as
// the reference decoder does, whatever the chunking, in place or not, with
// limits around the tokens' sizes: the same frames, the same error at the
// same offset.
func TestDecodeDenseMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	for iter := range 300 {
		var stream []byte
		for range 1 + r.IntN(4) {
			tok := make([]byte, 1+r.IntN(3000))
			for i := range tok {
				tok[i] = "ab\n\\"[r.IntN(4)]
			}
			stream = AppendToken(stream, tok)
		}
		switch iter % 5 {
		case 1: // an invalid escape inside a dense body
			stream[r.IntN(len(stream)-1)] = '\\'
			stream = append(stream[:len(stream)-1], 'x', '\n')
		case 2: // a frame cut short, ending in a backslash
			stream = append(stream, bytes.Repeat([]byte("\\n"), 40)...)
			stream = append(stream, '\\')
		}
		limit := 1 + r.IntN(3000)
		want, wantErr := refDecode(stream, limit)
		for _, inPlace := range []bool{false, true} {
			got, err := decodeChunksMode(t, stream, limit, randomCuts(r, len(stream)), inPlace, false)
			check.Equal(t, wantErr, err, "iteration %d, limit %d, in place %v", iter, limit, inPlace)
			requireFramesEqual(t, want, got)
		}
	}
}
