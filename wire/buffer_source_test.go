package wire

import (
	"bytes"
	"slices"
	"testing"
)

// Both decoders are BufferSources.
var (
	_ BufferSource = (*Decoder)(nil)
	_ BufferSource = (*Token2Decoder)(nil)
)

// A decoder with a buffer source decodes each token that spans chunks into
// a buffer from it (token/1: once it knows the size to ask for, from the
// last token that spanned chunks), and never one that lies inside a chunk.
// The tokens are the ones encoded, whatever the source gave.
func TestBufferSourceHoldsTokensThatSpanChunks(t *testing.T) {
	sizes := []int{5, 3000, 70000, 10, 70000, 70000, 1, 3000}
	for _, codec := range []Codec{Token1, Token2} {
		t.Run(codec.Protocol(), func(t *testing.T) {
			const chunk = 1000
			var stream []byte
			var want [][]byte
			var inOne []bool // the frame lies inside one chunk
			for i, n := range sizes {
				tok := bytes.Repeat([]byte{byte('a' + i)}, n)
				want = append(want, tok)
				start := len(stream)
				stream = codec.AppendToken(stream, tok)
				inOne = append(inOne, start/chunk == (len(stream)-1)/chunk)
			}
			dec, err := codec.NewDecoder(1 << 20)
			if err != nil {
				t.Fatal(err)
			}
			var given [][]byte
			dec.(BufferSource).SetBufferSource(func(n int) []byte {
				b := make([]byte, 7, n+16) // not empty, and larger than asked: the decoder copes
				given = append(given, b)
				return b
			})
			var got []Frame
			for off := 0; off < len(stream); off += chunk {
				got, err = dec.AppendFrames(got, stream[off:min(off+chunk, len(stream))])
				if err != nil {
					t.Fatal(err)
				}
			}
			if len(got) != len(want) {
				t.Fatalf("%d frames, want %d", len(got), len(want))
			}
			fromSource := 0
			for i, f := range got {
				if !bytes.Equal(f.Token, want[i]) {
					t.Fatalf("token %d: %d bytes, not the %d encoded", i, len(f.Token), len(want[i]))
				}
				in := false
				for _, b := range given {
					in = in || &b[:1][0] == &f.Token[0]
				}
				if in {
					fromSource++
				}
				if in && inOne[i] {
					t.Errorf("token %d (%d bytes) is in a buffer of the source, but it lies inside a chunk", i, sizes[i])
				}
			}
			// token/2 knows each size from the header: the four tokens over
			// a chunk. token/1 sizes its buffer after the last token that
			// spanned: the second and third of 70,000 bytes.
			wantFrom := map[string]int{ProtocolToken1: 2, ProtocolToken2: 4}[codec.Protocol()]
			if fromSource < wantFrom {
				t.Errorf("%d tokens in buffers of the source (of %d it gave), want at least %d", fromSource, len(given), wantFrom)
			}
		})
	}
}

// token/2 asks its source for every DATA payload up to eagerPayload that
// spans chunks, at its exact size, and never for an empty one (n > 0, as
// BufferSource promises), even when the header of an empty DATA frame is
// split.
func TestToken2BufferSourceAsksForWhatItNeeds(t *testing.T) {
	for _, tc := range []struct {
		name   string
		token  []byte
		splits []int // chunk boundaries in the frame
		asked  []int
	}{
		{"eagerPayload in three chunks", bytes.Repeat([]byte{'e'}, eagerPayload), []int{1000, eagerPayload / 2}, []int{eagerPayload}},
		{"empty, its header split", []byte{}, []int{1}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frame := AppendData(nil, tc.token)
			dec, err := NewToken2Decoder(DefaultMaxTokenSize)
			if err != nil {
				t.Fatal(err)
			}
			var asked []int
			dec.SetBufferSource(func(n int) []byte {
				asked = append(asked, n)
				return make([]byte, 0, n)
			})
			var got []Frame
			last := 0
			for _, cut := range append(tc.splits, len(frame)) {
				if got, err = dec.AppendFrames(got, frame[last:cut]); err != nil {
					t.Fatal(err)
				}
				last = cut
			}
			if len(got) != 1 || !bytes.Equal(got[0].Token, tc.token) {
				t.Fatalf("decoded %d frames, want the one token of %d bytes", len(got), len(tc.token))
			}
			if !slices.Equal(asked, tc.asked) {
				t.Errorf("the source was asked for %v, want %v", asked, tc.asked)
			}
		})
	}
}
