package wire

import (
	"bytes"
	"testing"
)

// The buffer of a frame that spans chunks is sized from the last such token
// once the decoder has seen one: a second token of 256 KiB in 64 KiB chunks
// costs one allocation (its buffer, handed over as the token), not one per
// doubling.
func TestSpanningTokenSizedOnce(t *testing.T) {
	const size, step = 256 << 10, 64 << 10
	stream := AppendToken(nil, bytes.Repeat([]byte{'s'}, size))
	d, err := NewDecoder(DefaultMaxTokenSize)
	check.NoError(t, err)
	frames := make([]Frame, 0, 1)
	allocs := testing.AllocsPerRun(20, func() {
		frames = frames[:0]
		for i := 0; i < len(stream); i += step {
			if frames, err = d.AppendFrames(frames, stream[i:min(i+step, len(stream))]); err != nil {
				t.Fatal(err)
			}
		}
		if len(frames) != 1 || len(frames[0].Token) != size {
			t.Fatalf("%d frames", len(frames))
		}
	})
	check.Equal(t, 1.0, allocs, "allocations per token of %d bytes in chunks of %d", size, step)
}

// Between frames a decoder holds no buffer, even after a large token that
// spanned chunks: an idle connection costs nothing for it.
func TestIdleDecoderHoldsNoBuffer(t *testing.T) {
	stream := AppendToken(nil, bytes.Repeat([]byte{'b'}, 1<<20))
	for _, inPlace := range []bool{false, true} {
		d, err := NewDecoder(DefaultMaxTokenSize)
		check.NoError(t, err)
		decode := d.AppendFrames
		if inPlace {
			decode = d.AppendFramesInPlace
		}
		var frames []Frame
		for _, chunk := range [][]byte{stream[:1000], stream[1000:], []byte("next\n")} {
			frames, err = decode(frames, bytes.Clone(chunk))
			check.NoError(t, err)
		}
		check.Len(t, frames, 2)
		check.Zero(t, d.Buffered())
		check.Zero(t, cap(d.buf), "the capacity the decoder holds after a chunk of whole frames (in place: %v)", inPlace)
	}
}
