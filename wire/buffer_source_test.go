package wire

import (
	"bytes"
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
