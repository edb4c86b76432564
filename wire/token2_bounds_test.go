package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
	"testing"
)

// A token/2 stream decodes to the same frames however it is cut into three
// chunks: headers split inside their length, payloads split anywhere, a
// chunk that ends a header and starts a payload.
func TestToken2EverySplitIntoThree(t *testing.T) {
	want := []Frame{
		{Kind: KindToken, Token: []byte("a")},
		{Kind: KindToken, Token: bytes.Repeat([]byte("0123456789"), 13)}, // a two-byte length
		{Kind: KindAck, Value: 1 << 33},
		{Kind: KindRemoteClose, Token: []byte("bye")},
		{Kind: KindToken, Token: []byte{}},
		{Kind: KindEnd},
	}
	stream := encodeFrames(want)
	for i := 1; i < len(stream); i++ {
		for j := i; j < len(stream); j++ {
			got, err := decode2Chunks(t, stream, DefaultMaxTokenSize, []int{i, j})
			if err != nil {
				t.Fatalf("cut at %d and %d: %v", i, j, err)
			}
			requireFrames2Equal(t, want, got)
		}
	}
}

// A DATA frame up to 1 MiB that spans chunks is collected into one buffer
// allocated at its final size: one allocation, whatever the chunks, 1 MiB
// included.
func TestToken2SpanningTokenAllocatedOnce(t *testing.T) {
	for _, size := range []int{100, 64 << 10, eagerPayload} {
		stream := AppendData(nil, bytes.Repeat([]byte{'t'}, size))
		d, err := NewToken2Decoder(DefaultMaxTokenSize)
		check.NoError(t, err)
		third := len(stream) / 3
		frames := make([]Frame, 0, 1)
		allocs := testing.AllocsPerRun(20, func() {
			frames = frames[:0]
			for _, chunk := range [][]byte{stream[:third], stream[third : 2*third], stream[2*third:]} {
				if frames, err = d.AppendFrames(frames, chunk); err != nil {
					t.Fatal(err)
				}
			}
			if len(frames) != 1 || len(frames[0].Token) != size {
				t.Fatalf("%d frames", len(frames))
			}
		})
		check.Equal(t, 1.0, allocs, "allocations for a token of %d bytes in three chunks", size)
		check.Equal(t, size, cap(frames[0].Token))
	}
}

// A DATA frame over 1 MiB grows as its bytes arrive, never past its size.
func TestToken2LargeTokenHoldsNoMoreThanItsSize(t *testing.T) {
	const size = eagerPayload + 3<<20 + 1234
	tok := bytes.Repeat([]byte("x"), size)
	stream := AppendData(nil, tok)
	d, err := NewToken2Decoder(DefaultMaxTokenSize)
	check.NoError(t, err)
	var frames []Frame
	for i := 0; i < len(stream); i += 16 << 10 {
		frames, err = d.AppendFrames(frames, stream[i:min(i+16<<10, len(stream))])
		check.NoError(t, err)
		check.LessOrEqual(t, cap(d.buf), size, "the buffer of a frame in progress")
	}
	check.Len(t, frames, 1)
	check.Equal(t, tok, frames[0].Token)
	check.LessOrEqual(t, cap(frames[0].Token), size)
}

// An empty token refers to no byte of its chunk: a chunk of empty DATA
// frames is not kept.
func TestToken2EmptyTokensDoNotKeepTheChunk(t *testing.T) {
	d, err := NewToken2Decoder(16)
	check.NoError(t, err)
	chunk := AppendData(AppendData(nil, nil), []byte{})
	frames, err := d.AppendFrames(nil, chunk)
	check.NoError(t, err)
	check.Len(t, frames, 2)
	check.False(t, d.ChunkKept())
}

// A control frame over MaxControlPayload is refused with its length in the
// error, from the stream decoder and from the handshake readers alike.
func TestToken2ControlFrameOverLimitSaysItsSize(t *testing.T) {
	for _, size := range []uint64{MaxControlPayload + 1, 2000, 1 << 40} {
		frame := binary.AppendUvarint([]byte{byte(TypeClose)}, size)
		want := "control frame of " + strconv.FormatUint(size, 10) + " bytes, over 1024"
		d, err := NewToken2Decoder(DefaultMaxTokenSize)
		check.NoError(t, err)
		_, err = d.AppendFrames(nil, frame)
		var fe *FrameError
		check.True(t, errors.As(err, &fe), "a *FrameError: %v", err)
		check.Equal(t, want, fe.Reason)
		_, err = ReadWelcome(bytes.NewReader(frame))
		check.True(t, errors.As(err, &fe), "a *FrameError: %v", err)
		check.Equal(t, want, fe.Reason)
	}
}

// A CLOSE reason of exactly MaxControlPayload bytes is kept whole: by
// AppendClose, by the stream decoder and by ReadWelcome, which reads its
// two-byte length.
func TestToken2CloseReasonAtTheLimit(t *testing.T) {
	reason := strings.Repeat("r", MaxControlPayload)
	frame := AppendClose(nil, reason)
	check.Equal(t, reason, string(closeReason(t, frame)))
	_, err := ReadWelcome(bytes.NewReader(frame))
	var re *RefusedError
	check.True(t, errors.As(err, &re), "a *RefusedError: %v", err)
	check.Equal(t, reason, re.Reason)

	// And a reason of 200 bytes, whose length takes two bytes too.
	_, err = ReadWelcome(bytes.NewReader(AppendClose(nil, reason[:200])))
	check.True(t, errors.As(err, &re), "a *RefusedError: %v", err)
	check.Equal(t, reason[:200], re.Reason)
}

// NextFrame2 takes the smallest frames (END is two bytes) and refuses a
// header whose length is cut short.
func TestNextFrame2Boundaries(t *testing.T) {
	ty, size, ok := NextFrame2(AppendEnd(nil))
	check.True(t, ok, "END")
	check.Equal(t, TypeEnd, ty)
	check.Equal(t, 2, size)
	ty, size, ok = NextFrame2(AppendData(nil, nil))
	check.True(t, ok, "an empty DATA")
	check.Equal(t, TypeData, ty)
	check.Equal(t, 2, size)
	long := AppendData(nil, make([]byte, 300)) // its length takes two bytes
	for _, cut := range []int{1, 2} {
		_, _, ok = NextFrame2(long[:cut])
		check.False(t, ok, "a header cut after %d bytes", cut)
	}
}
