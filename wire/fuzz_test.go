package wire

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// FuzzDecode feeds arbitrary bytes, cut into chunks at pseudo-random points,
// to a decoder with a small limit. It must never panic, never return a token
// over the limit, agree with the byte-at-a-time reference decoder whatever
// the chunking, and, when there is no error, re-encoding the frames must give
// back exactly the input up to the last complete frame.
func FuzzDecode(f *testing.F) {
	f.Add([]byte("hello\nworld\n"), uint16(16), uint64(1))
	f.Add([]byte("a\\nb\\\\c\n\\\n"), uint16(3), uint64(2))
	f.Add([]byte("abc\\x\n"), uint16(100), uint64(3))
	f.Add([]byte("abc\\\n"), uint16(100), uint64(4))
	f.Add([]byte("\\"), uint16(1), uint64(5))
	f.Add([]byte("0123456789\\n\n"), uint16(10), uint64(6))
	f.Add([]byte("0123456789\\n\n"), uint16(11), uint64(7))
	dense := bytes.Repeat([]byte("a\\nb\\\\"), 60) // decoded by unescapeDense (denseProbe)
	f.Add(append(append([]byte{}, dense...), '\n'), uint16(60), uint64(8))
	f.Add(append(append([]byte{}, dense...), "\\x\n"...), uint16(4095), uint64(9))
	f.Add(append(append([]byte{}, dense...), '\\'), uint16(4095), uint64(10))
	f.Fuzz(func(t *testing.T, data []byte, limit16 uint16, seed uint64) {
		limit := int(limit16%4096) + 1
		r := rand.New(rand.NewPCG(seed, seed>>32))
		want, wantErr := refDecode(data, limit)
		got, err := decodeChunks(t, data, limit, randomCuts(r, len(data)))
		check.Equal(t, wantErr, err)
		requireFramesEqual(t, want, got)
		for _, fr := range got {
			if len(fr.Token) > limit {
				t.Fatalf("token of %d bytes over limit %d", len(fr.Token), limit)
			}
		}
		if err != nil {
			return
		}
		var again []byte
		for _, fr := range got {
			if fr.Kind == KindRemoteClose {
				again = AppendRemoteClose(again)
			} else {
				again = AppendToken(again, fr.Token)
			}
		}
		consumed := data[:bytes.LastIndexByte(data, '\n')+1]
		if !bytes.Equal(consumed, again) {
			t.Fatalf("re-encoded %q, consumed %q", again, consumed)
		}
	})
}

// FuzzRoundTrip encodes any token, splits the frame at any point, and checks
// that it decodes back to the same token, also with the limit set exactly to
// the token's size.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte(""), uint32(0))
	f.Add([]byte("plain text"), uint32(3))
	f.Add([]byte("\\"), uint32(1))
	f.Add([]byte("\\\n"), uint32(2))
	f.Add([]byte("a\nb\\c\\\\\n\n"), uint32(5))
	f.Fuzz(func(t *testing.T, tok []byte, split uint32) {
		frame := AppendToken(nil, tok)
		if len(frame) != EncodedLen(tok) {
			t.Fatalf("EncodedLen %d, frame %d", EncodedLen(tok), len(frame))
		}
		cut := int(split % uint32(len(frame)+1))
		part := int(split % uint32(len(tok)+1))
		pieces := AppendTokenPiece(AppendTokenPiece(nil, tok[:part], false), tok[part:], true)
		if !bytes.Equal(pieces, frame) {
			t.Fatalf("token %q in pieces cut at %d: %q, want %q", tok, part, pieces, frame)
		}
		for _, limit := range []int{DefaultMaxTokenSize, max(len(tok), 1)} {
			d, err := NewDecoder(limit)
			if err != nil {
				t.Fatal(err)
			}
			frames, err := d.AppendFrames(nil, frame[:cut])
			if err != nil {
				t.Fatal(err)
			}
			frames, err = d.AppendFrames(frames, frame[cut:])
			if err != nil {
				t.Fatal(err)
			}
			if len(frames) != 1 || frames[0].Kind != KindToken || !bytes.Equal(frames[0].Token, tok) {
				t.Fatalf("token %q cut at %d: got %+v", tok, cut, frames)
			}
			if d.Buffered() != 0 {
				t.Fatalf("Buffered %d after a complete frame", d.Buffered())
			}
		}
		if len(tok) > 1 {
			d, _ := NewDecoder(len(tok) - 1)
			if _, err := d.AppendFrames(nil, frame); err == nil {
				t.Fatalf("token of %d bytes accepted with limit %d", len(tok), len(tok)-1)
			}
		}
	})
}
