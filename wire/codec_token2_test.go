package wire

import (
	"bytes"
	"errors"
	"testing"
)

// Token2 encodes as the token/2 functions do, its decoder gives every kind
// back, and WholeFrames finds frame ends and counts data frames.
func TestToken2Codec(t *testing.T) {
	check.Equal(t, "token/2", Token2.Protocol())
	tokens := [][]byte{[]byte("plain"), {}, []byte("a\\b\nc"), bytes.Repeat([]byte{7}, 300)}
	var stream, want []byte
	for _, tok := range tokens {
		stream = Token2.AppendToken(stream, tok)
		want = AppendData(want, tok)
		check.Equal(t, DataLen(len(tok)), Token2.FrameSizeHint(len(tok)))
	}
	for _, f := range []Frame{{Kind: KindAck, Value: 1 << 40}, {Kind: KindRemoteClose, Token: []byte("bye")}, {Kind: KindEnd}} {
		var err error
		stream, err = Token2.AppendControl(stream, f)
		check.NoError(t, err)
	}
	want = AppendEnd(AppendClose(AppendAck(want, 1<<40), "bye"))
	check.Equal(t, want, stream)

	dec, err := Token2.NewDecoder(1024)
	check.NoError(t, err)
	frames, err := dec.AppendFramesInPlace(nil, bytes.Clone(stream))
	check.NoError(t, err)
	check.Len(t, frames, len(tokens)+3)
	for i, tok := range tokens {
		check.Equal(t, KindToken, frames[i].Kind)
		check.Equal(t, tok, frames[i].Token)
	}
	check.Equal(t, Frame{Kind: KindAck, Value: 1 << 40}, frames[len(tokens)])
	check.Equal(t, "bye", string(frames[len(tokens)+1].Token))
	check.Equal(t, KindEnd, frames[len(tokens)+2].Kind)

	end, n := Token2.WholeFrames(stream)
	check.Equal(t, len(stream), end)
	check.Equal(t, len(tokens), n)
	// Cut inside the 300-byte token: the whole frames are the three before.
	cut := len(AppendData(AppendData(AppendData(nil, tokens[0]), tokens[1]), tokens[2]))
	end, n = Token2.WholeFrames(stream[:cut+10])
	check.Equal(t, cut, end)
	check.Equal(t, 3, n)

	for _, f := range []Frame{{Kind: KindToken}, {Kind: KindEnd, Value: 1}, {Kind: KindRemoteClose, Value: 2}, {Kind: FrameKind(99)}} {
		out, err := Token2.AppendControl([]byte("x"), f)
		check.True(t, errors.Is(err, ErrUnsupportedFrame), "%v: %v", f.Kind, err)
		check.Equal(t, []byte("x"), out)
	}
	_, err = Token2.NewDecoder(0)
	check.ErrorIs(t, err, ErrInvalidLimit)
}

// Held counts what a decoder allocated for a frame in progress, not only
// what arrived: token/2 sizes a payload's buffer when its header arrives.
func TestDecodersHeld(t *testing.T) {
	d1, _ := Token1.NewDecoder(1 << 20)
	_, err := d1.AppendFrames(nil, bytes.Repeat([]byte{'a'}, 1000))
	check.NoError(t, err)
	check.True(t, d1.Held() >= 1000 && d1.Held() >= d1.Buffered(), "token/1 holds %d for %d buffered", d1.Held(), d1.Buffered())
	_, err = d1.AppendFrames(nil, []byte("\n"))
	check.NoError(t, err)
	check.Zero(t, d1.Held(), "a completed token is the user's")

	d2, _ := Token2.NewDecoder(1 << 20)
	frame := AppendData(nil, make([]byte, 100<<10))
	_, err = d2.AppendFrames(nil, frame[:10])
	check.NoError(t, err)
	check.True(t, d2.Held() >= 100<<10, "token/2 holds %d after the header of a 100 KiB token", d2.Held())
	_, err = d2.AppendFrames(nil, frame[10:])
	check.NoError(t, err)
	check.Zero(t, d2.Held())
}
