package wire

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

const token2VectorsPath = "testdata/token2-vectors.json"

type token2Frame struct {
	Kind     string `json:"kind"`
	TokenHex string `json:"token_hex"`
	Value    uint64 `json:"value"`
	Reason   string `json:"reason"`
}

type token2Vectors struct {
	Frames []struct {
		Name   string        `json:"name"`
		Hex    string        `json:"hex"`
		Frames []token2Frame `json:"frames"`
	} `json:"frames"`
	Hello []struct {
		Name       string `json:"name"`
		Hex        string `json:"hex"`
		SessionHex string `json:"session_hex"`
		Recv       uint64 `json:"recv"`
		First      uint64 `json:"first"`
		Last       uint64 `json:"last"`
	} `json:"hello"`
	Welcome []struct {
		Name   string `json:"name"`
		Hex    string `json:"hex"`
		Status byte   `json:"status"`
		Recv   uint64 `json:"recv"`
	} `json:"welcome"`
	Rejected []struct {
		Name   string `json:"name"`
		Hex    string `json:"hex"`
		Where  string `json:"where"`
		Limit  int    `json:"limit"`
		Error  string `json:"error"`
		Reason string `json:"reason"`
	} `json:"rejected"`
}

func loadToken2Vectors(t *testing.T) token2Vectors {
	t.Helper()
	data, err := os.ReadFile(token2VectorsPath)
	check.NoError(t, err)
	var v token2Vectors
	check.NoError(t, json.Unmarshal(data, &v))
	check.NotEmpty(t, v.Frames)
	check.NotEmpty(t, v.Hello)
	check.NotEmpty(t, v.Welcome)
	check.NotEmpty(t, v.Rejected)
	return v
}

// wantFrames turns a vector's frames into what the decoder must yield.
func wantFrames(t *testing.T, fs []token2Frame) []Frame {
	t.Helper()
	var out []Frame
	for _, f := range fs {
		switch f.Kind {
		case "token":
			out = append(out, Frame{Kind: KindToken, Token: mustHex(t, f.TokenHex)})
		case "ack":
			out = append(out, Frame{Kind: KindAck, Value: f.Value})
		case "remoteClose":
			out = append(out, Frame{Kind: KindRemoteClose, Token: []byte(f.Reason)})
		case "end":
			out = append(out, Frame{Kind: KindEnd})
		default:
			t.Fatalf("vector kind %q", f.Kind)
		}
	}
	return out
}

// encodeFrames is the encoder's side of a vector.
func encodeFrames(fs []Frame) []byte {
	var out []byte
	for _, f := range fs {
		switch f.Kind {
		case KindToken:
			out = AppendData(out, f.Token)
		case KindAck:
			out = AppendAck(out, f.Value)
		case KindRemoteClose:
			out = AppendClose(out, string(f.Token))
		case KindEnd:
			out = AppendEnd(out)
		}
	}
	return out
}

func TestToken2VectorsFrames(t *testing.T) {
	for _, v := range loadToken2Vectors(t).Frames {
		t.Run(v.Name, func(t *testing.T) {
			stream := mustHex(t, v.Hex)
			want := wantFrames(t, v.Frames)
			check.Equal(t, stream, encodeFrames(want), "encode")
			for _, cuts := range [][]int{nil, everyByte(len(stream))} {
				got, err := decode2Chunks(t, stream, DefaultMaxTokenSize, cuts)
				check.NoError(t, err)
				requireFrames2Equal(t, want, got)
			}
		})
	}
}

func TestToken2VectorsHandshake(t *testing.T) {
	v := loadToken2Vectors(t)
	for _, h := range v.Hello {
		t.Run("hello "+h.Name, func(t *testing.T) {
			frame := mustHex(t, h.Hex)
			var want Hello
			copy(want.Session[:], mustHex(t, h.SessionHex))
			want.Recv, want.First, want.Last = h.Recv, h.First, h.Last
			check.Equal(t, frame, AppendHello(nil, want), "encode")
			got, err := ReadHello(bytes.NewReader(frame))
			check.NoError(t, err)
			check.Equal(t, want, got)
		})
	}
	for _, w := range v.Welcome {
		t.Run("welcome "+w.Name, func(t *testing.T) {
			frame := mustHex(t, w.Hex)
			want := Welcome{Status: SessionStatus(w.Status), Recv: w.Recv}
			check.Equal(t, frame, AppendWelcome(nil, want), "encode")
			got, err := ReadWelcome(bytes.NewReader(frame))
			check.NoError(t, err)
			check.Equal(t, want, got)
		})
	}
}

func TestToken2VectorsRejected(t *testing.T) {
	for _, v := range loadToken2Vectors(t).Rejected {
		t.Run(v.Name, func(t *testing.T) {
			stream := mustHex(t, v.Hex)
			var err error
			switch v.Where {
			case "stream":
				limit := DefaultMaxTokenSize
				if v.Limit > 0 {
					limit = v.Limit
				}
				var errEvery error
				_, err = decode2Chunks(t, stream, limit, nil)
				_, errEvery = decode2Chunks(t, stream, limit, everyByte(len(stream)))
				check.Equal(t, err, errEvery, "the same error however the stream is cut")
			case "hello":
				_, err = ReadHello(bytes.NewReader(stream))
			case "welcome":
				_, err = ReadWelcome(bytes.NewReader(stream))
			default:
				t.Fatalf("vector where %q", v.Where)
			}
			switch v.Error {
			case "bad_frame":
				check.ErrorIs(t, err, ErrBadFrame)
				var fe *FrameError
				check.True(t, errors.As(err, &fe), "a *FrameError")
			case "too_large":
				check.ErrorIs(t, err, ErrTokenTooLarge)
				var te *TokenTooLargeError
				check.True(t, errors.As(err, &te), "a *TokenTooLargeError")
				check.Equal(t, v.Limit, te.Limit)
				check.Equal(t, int64(0), te.Offset, "the frame's first byte")
			case "refused":
				check.ErrorIs(t, err, ErrRefused)
				var re *RefusedError
				check.True(t, errors.As(err, &re), "a *RefusedError")
				check.Equal(t, v.Reason, re.Reason)
			case "unexpected_eof":
				check.ErrorIs(t, err, io.ErrUnexpectedEOF)
			default:
				t.Fatalf("vector error %q", v.Error)
			}
		})
	}
}

func TestToken2ReadHelloReadsOnlyItsFrame(t *testing.T) {
	h := Hello{Session: SessionID{1, 2, 3}, Recv: 1 << 40, First: 7, Last: 9}
	after := AppendData(nil, []byte("next"))
	r := bytes.NewReader(append(AppendHello(nil, h), after...))
	got, err := ReadHello(r)
	check.NoError(t, err)
	check.Equal(t, h, got)
	rest, _ := io.ReadAll(r)
	check.Equal(t, after, rest, "the bytes after HELLO stay unread")

	_, err = ReadHello(bytes.NewReader(nil))
	check.ErrorIs(t, err, io.EOF, "a stream that ends before any byte")
	_, err = ReadWelcome(bytes.NewReader([]byte{byte(TypeWelcome)}))
	check.ErrorIs(t, err, io.ErrUnexpectedEOF)
	boom := errors.New("boom")
	_, err = ReadWelcome(io.MultiReader(bytes.NewReader([]byte{byte(TypeWelcome), 2}), &errReader{boom}))
	check.ErrorIs(t, err, boom, "read errors are returned as they are")
}

type errReader struct{ err error }

func (r *errReader) Read([]byte) (int, error) { return 0, r.err }

func TestToken2DecoderZeroCopyAndChunkKept(t *testing.T) {
	d, err := NewToken2Decoder(1 << 20)
	check.NoError(t, err)
	chunk := AppendData(AppendData(nil, []byte("abc")), []byte("de"))
	frames, err := d.AppendFrames(nil, chunk)
	check.NoError(t, err)
	check.Len(t, frames, 2)
	check.True(t, d.ChunkKept())
	check.True(t, aliases(frames[0].Token, chunk), "a token inside its chunk is not copied")
	check.Equal(t, len(frames[0].Token), cap(frames[0].Token), "capacity cut to the length")

	// A token that spans chunks is the decoder's own; its chunk is free.
	frame := AppendData(nil, bytes.Repeat([]byte{'x'}, 100))
	frames, err = d.AppendFrames(nil, frame[:10])
	check.NoError(t, err)
	check.Empty(t, frames)
	check.False(t, d.ChunkKept())
	check.Equal(t, 10, d.Buffered())
	check.Equal(t, 92, d.Remaining())
	last := frame[10:]
	frames, err = d.AppendFrames(nil, last)
	check.NoError(t, err)
	check.Len(t, frames, 1)
	check.False(t, d.ChunkKept())
	check.False(t, aliases(frames[0].Token, last))
	check.Equal(t, 100, cap(frames[0].Token), "allocated once at its final size")
	check.Zero(t, d.Buffered())

	// A CLOSE's reason is copied.
	chunk = AppendClose(nil, "going away")
	frames, err = d.AppendFrames(nil, chunk)
	check.NoError(t, err)
	check.False(t, d.ChunkKept())
	check.False(t, aliases(frames[0].Token, chunk))
}

func TestToken2DecoderLargeTokenGrowsWithItsBytes(t *testing.T) {
	const size = 4 << 20
	d, err := NewToken2Decoder(size)
	check.NoError(t, err)
	header := AppendData(nil, make([]byte, size))[:DataLen(size)-size]
	_, err = d.AppendFrames(nil, header)
	check.NoError(t, err)
	check.LessOrEqual(t, cap(d.buf), minGrow, "a header alone does not make the decoder hold the token's size")
	tok := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	var frames []Frame
	for i := 0; i < size; i += 16 << 10 {
		frames, err = d.AppendFrames(frames, tok[i:i+16<<10])
		check.NoError(t, err)
	}
	check.Len(t, frames, 1)
	check.Equal(t, tok, frames[0].Token)
}

func TestToken2DecoderErrorsAreSticky(t *testing.T) {
	d, err := NewToken2Decoder(16)
	check.NoError(t, err)
	frames, err := d.AppendFrames(nil, append(AppendData(nil, []byte("ok")), 0x09, 0x00))
	check.ErrorIs(t, err, ErrBadFrame)
	check.Len(t, frames, 1, "the frame before the error is returned")
	var fe *FrameError
	check.True(t, errors.As(err, &fe), "a *FrameError")
	check.Equal(t, int64(4), fe.Offset)
	check.Equal(t, FrameType(0x09), fe.Type)
	check.True(t, strings.Contains(err.Error(), "unknown frame type"), err.Error())
	again, err2 := d.AppendFrames(nil, AppendData(nil, []byte("more")))
	check.Empty(t, again)
	check.Equal(t, err, err2)
	check.Zero(t, d.Buffered())

	_, err = NewToken2Decoder(0)
	check.Equal(t, ErrInvalidLimit, err)
}

func TestToken2TokenAtTheLimit(t *testing.T) {
	for _, limit := range []int{1, 127, 128, 1000} {
		d, err := NewToken2Decoder(limit)
		check.NoError(t, err)
		tok := bytes.Repeat([]byte{0x5c}, limit)
		frames, err := d.AppendFrames(nil, AppendData(nil, tok))
		check.NoError(t, err)
		check.Equal(t, tok, frames[0].Token)
		_, err = d.AppendFrames(nil, AppendData(nil, append(tok, 0)))
		check.ErrorIs(t, err, ErrTokenTooLarge)
	}
}

func TestAppendCloseKeepsFramesValid(t *testing.T) {
	long := strings.Repeat("é", MaxControlPayload) // 2 bytes each
	for _, reason := range []string{"", "bye", long, "bad \xff byte"} {
		frame := AppendClose(nil, reason)
		d, _ := NewToken2Decoder(16)
		frames, err := d.AppendFrames(nil, frame)
		check.NoError(t, err, "reason %q", reason)
		check.Len(t, frames, 1)
		got := frames[0].Token
		check.LessOrEqual(t, len(got), MaxControlPayload)
		check.True(t, utf8.Valid(got))
		if utf8.ValidString(reason) && len(reason) <= MaxControlPayload {
			check.Equal(t, reason, string(got))
		}
	}
	check.Equal(t, MaxControlPayload, len(closeReason(t, AppendClose(nil, strings.Repeat("a", 5000)))))
	check.Equal(t, MaxControlPayload, len(closeReason(t, AppendClose(nil, long))), "1024 bytes is 512 two-byte characters")
	check.Equal(t, MaxControlPayload-1, len(closeReason(t, AppendClose(nil, "a"+long))), "cut before a character, never inside")
}

func closeReason(t *testing.T, frame []byte) []byte {
	t.Helper()
	d, _ := NewToken2Decoder(16)
	frames, err := d.AppendFrames(nil, frame)
	check.NoError(t, err)
	check.Len(t, frames, 1)
	return frames[0].Token
}

func TestNextFrame2WalksFrames(t *testing.T) {
	var batch []byte
	batch = AppendData(batch, []byte("a"))
	batch = AppendAck(batch, 1<<33)
	batch = AppendData(batch, make([]byte, 300))
	batch = AppendClose(batch, "x")
	var types []FrameType
	for rest := batch; len(rest) > 0; {
		ty, size, ok := NextFrame2(rest)
		check.True(t, ok)
		types = append(types, ty)
		rest = rest[size:]
	}
	check.Equal(t, []FrameType{TypeData, TypeAck, TypeData, TypeClose}, types)
	_, _, ok := NextFrame2(batch[:len(batch)-1][len(batch)-4:])
	check.False(t, ok, "a frame cut short")
	_, _, ok = NextFrame2([]byte{1})
	check.False(t, ok)
}

func TestToken2Names(t *testing.T) {
	check.Equal(t, "DATA", TypeData.String())
	check.Equal(t, "WELCOME", TypeWelcome.String())
	check.Equal(t, "FrameType(0x0a)", FrameType(10).String())
	check.Equal(t, "resumed", SessionResumed.String())
	check.Equal(t, "SessionStatus(7)", SessionStatus(7).String())
	check.Equal(t, "ack", KindAck.String())
	check.Equal(t, "end", KindEnd.String())
	check.Equal(t, "END", TypeEnd.String())
}

// decode2Chunks feeds stream to a fresh Token2Decoder in the chunks cuts
// makes, checks the invariants of every call, and returns the frames and
// the error.
func decode2Chunks(t testing.TB, stream []byte, limit int, cuts []int) ([]Frame, error) {
	t.Helper()
	frames, err := decode2ChunksWith(t, stream, limit, cuts, false)
	sourced, errSourced := decode2ChunksWith(t, stream, limit, cuts, true)
	check.Equal(t, err, errSourced, "the error with a BufferSource")
	requireFrames2Equal(t, frames, sourced)
	return frames, err
}

// decode2ChunksWith is decode2Chunks, with a BufferSource (source) whose
// buffers are larger than asked and not empty, their bytes all 0x5A, or
// without one.
func decode2ChunksWith(t testing.TB, stream []byte, limit int, cuts []int, source bool) ([]Frame, error) {
	t.Helper()
	d, err := NewToken2Decoder(limit)
	check.NoError(t, err)
	if source {
		d.SetBufferSource(junkBuffer)
	}
	var frames []Frame
	prev := 0
	for _, c := range append(cuts, len(stream)) {
		chunk := bytes.Clone(stream[prev:c])
		n := len(frames)
		frames, err = d.AppendFrames(frames, chunk)
		for _, f := range frames[n:] {
			switch f.Kind {
			case KindToken:
				check.NotNil(t, f.Token)
				check.Equal(t, len(f.Token), cap(f.Token))
				check.LessOrEqual(t, len(f.Token), limit)
			case KindRemoteClose:
				check.True(t, utf8.Valid(f.Token))
				check.LessOrEqual(t, len(f.Token), MaxControlPayload)
			case KindAck, KindEnd:
			default:
				t.Fatalf("bad kind %v", f.Kind)
			}
		}
		if !d.ChunkKept() {
			for _, f := range frames[n:] {
				if aliases(f.Token, chunk) {
					t.Fatalf("ChunkKept is false, but a token aliases its chunk")
				}
			}
		}
		for j := n; j < len(frames); j++ {
			if aliases(frames[j].Token, chunk) {
				frames[j].Token = bytes.Clone(frames[j].Token)
			}
		}
		for i := range chunk {
			chunk[i] = 0xAA // the decoder must keep no reference to it
		}
		if err != nil {
			check.Zero(t, d.Buffered())
			return frames, err
		}
		prev = c
	}
	return frames, nil
}

// refEnd is where the reference decoder stopped: the sentinel of its error
// (nil without one), the offset of the frame at fault, and how many bytes
// the complete frames took.
type refEnd struct {
	err      error
	at       int64
	consumed int
}

// refDecode2 is a reference token/2 decoder over a whole stream, written
// straight from TOKEN2.md without the streaming machinery. It returns the
// frames before the first error, and where it stopped.
func refDecode2(stream []byte, limit int) ([]Frame, refEnd) {
	var frames []Frame
	i := 0
	ended := false
	for i < len(stream) {
		t := FrameType(stream[i])
		if t != TypeData && t != TypeAck && t != TypeClose && t != TypeEnd {
			return frames, refEnd{ErrBadFrame, int64(i), i}
		}
		if ended && (t == TypeData || t == TypeEnd) {
			return frames, refEnd{ErrBadFrame, int64(i), i}
		}
		var n uint64
		k := 0
		for {
			j := i + 1 + k
			if j >= len(stream) {
				return frames, refEnd{consumed: i}
			}
			c := stream[j]
			if k == 9 && c > 1 {
				return frames, refEnd{ErrBadFrame, int64(i), i}
			}
			n |= uint64(c&0x7f) << (7 * k)
			k++
			if c < 0x80 {
				if c == 0 && k > 1 {
					return frames, refEnd{ErrBadFrame, int64(i), i}
				}
				break
			}
		}
		if t == TypeData && n > uint64(limit) {
			return frames, refEnd{ErrTokenTooLarge, int64(i), i}
		}
		if t != TypeData && n > MaxControlPayload {
			return frames, refEnd{ErrBadFrame, int64(i), i}
		}
		end := i + 1 + k + int(n)
		if end > len(stream) {
			return frames, refEnd{consumed: i}
		}
		payload := stream[i+1+k : end]
		switch t {
		case TypeData:
			frames = append(frames, Frame{Kind: KindToken, Token: bytes.Clone(payload)})
		case TypeAck:
			v, used := uint64(0), 0
			ok := false
			for used < len(payload) && used < 10 {
				c := payload[used]
				if used == 9 && c > 1 {
					break
				}
				v |= uint64(c&0x7f) << (7 * used)
				used++
				if c < 0x80 {
					ok = !(c == 0 && used > 1)
					break
				}
			}
			if !ok || used != len(payload) {
				return frames, refEnd{ErrBadFrame, int64(i), i}
			}
			frames = append(frames, Frame{Kind: KindAck, Value: v})
		case TypeClose:
			if !utf8.Valid(payload) {
				return frames, refEnd{ErrBadFrame, int64(i), i}
			}
			frames = append(frames, Frame{Kind: KindRemoteClose, Token: bytes.Clone(payload)})
		case TypeEnd:
			if len(payload) != 0 {
				return frames, refEnd{ErrBadFrame, int64(i), i}
			}
			ended = true
			frames = append(frames, Frame{Kind: KindEnd})
		}
		i = end
	}
	return frames, refEnd{consumed: i}
}

func requireFrames2Equal(t testing.TB, want, got []Frame) {
	t.Helper()
	check.Len(t, got, len(want))
	for i := range want {
		check.Equal(t, want[i].Kind, got[i].Kind, "frame %d", i)
		check.Equal(t, want[i].Value, got[i].Value, "frame %d", i)
		if want[i].Kind != KindAck {
			check.Equal(t, string(want[i].Token), string(got[i].Token), "frame %d", i)
		}
	}
}

// errorAt returns the frame offset and the sentinel of a decoder error, as
// the reference decoder's refEnd has them.
func errorAt(t testing.TB, err error) refEnd {
	t.Helper()
	var fe *FrameError
	var te *TokenTooLargeError
	switch {
	case err == nil:
		return refEnd{}
	case errors.As(err, &fe):
		return refEnd{err: ErrBadFrame, at: fe.Offset}
	case errors.As(err, &te):
		return refEnd{err: ErrTokenTooLarge, at: te.Offset}
	}
	t.Fatalf("unexpected error type %T: %v", err, err)
	return refEnd{}
}

// FuzzToken2Decode feeds arbitrary bytes, cut at pseudo-random points, to a
// token/2 decoder: it must never panic, agree with the reference decoder
// whatever the chunking, report the same error however the stream is cut,
// and re-encoding what it decoded must give back exactly the bytes of the
// complete frames (the encoding is canonical).
func FuzzToken2Decode(f *testing.F) {
	f.Add(AppendData(AppendAck(nil, 300), []byte("hi")), uint16(16), uint64(1))
	f.Add(AppendClose(AppendData(nil, nil), "bye"), uint16(3), uint64(2))
	f.Add([]byte{0x01, 0x80, 0x00}, uint16(100), uint64(3))
	f.Add([]byte{0x02, 0x02, 0x80, 0x00}, uint16(100), uint64(4))
	f.Add([]byte{0x01, 0x05, 'h', 'e', 'l', 'l', 'o'}, uint16(4), uint64(5))
	f.Add(AppendHello(nil, Hello{First: 1}), uint16(10), uint64(6))
	f.Add([]byte{0x03, 0x01, 0xff}, uint16(10), uint64(7))
	f.Add(AppendData(AppendEnd(AppendData(nil, []byte("x"))), nil), uint16(10), uint64(8))
	f.Fuzz(func(t *testing.T, data []byte, limit16 uint16, seed uint64) {
		limit := int(limit16%4096) + 1
		r := rand.New(rand.NewPCG(seed, seed>>32))
		want, stop := refDecode2(data, limit)
		whole, errWhole := decode2Chunks(t, data, limit, nil)
		got, err := decode2Chunks(t, data, limit, randomCuts(r, len(data)))
		check.Equal(t, errWhole, err, "the error does not depend on the chunking")
		gotEnd := errorAt(t, err)
		check.Equal(t, stop.err, gotEnd.err)
		check.Equal(t, stop.at, gotEnd.at)
		requireFrames2Equal(t, want, got)
		requireFrames2Equal(t, whole, got)
		if again := encodeFrames(got); !bytes.Equal(again, data[:stop.consumed]) {
			t.Fatalf("re-encoded %x, consumed %x", again, data[:stop.consumed])
		}
	})
}

// FuzzToken2RoundTrip encodes any token and acknowledgement, splits the
// stream at any point, and checks that it decodes back, also with the limit
// set exactly to the token's size.
func FuzzToken2RoundTrip(f *testing.F) {
	f.Add([]byte(""), uint64(0), uint32(0))
	f.Add([]byte("plain\ntext\\"), uint64(1<<63), uint32(3))
	f.Fuzz(func(t *testing.T, tok []byte, ack uint64, split uint32) {
		stream := AppendAck(AppendData(nil, tok), ack)
		check.Equal(t, DataLen(len(tok)), len(stream)-len(AppendAck(nil, ack)))
		cut := int(split % uint32(len(stream)+1))
		for _, limit := range []int{DefaultMaxTokenSize, max(len(tok), 1)} {
			frames, err := decode2Chunks(t, stream, limit, []int{cut})
			check.NoError(t, err)
			requireFrames2Equal(t, []Frame{{Kind: KindToken, Token: tok}, {Kind: KindAck, Value: ack}}, frames)
		}
		if len(tok) > 1 {
			_, err := decode2Chunks(t, stream, len(tok)-1, nil)
			check.ErrorIs(t, err, ErrTokenTooLarge)
		}
	})
}

// FuzzToken2Handshake reads arbitrary bytes as HELLO and as WELCOME: never a
// panic, and whatever is accepted encodes back to exactly the bytes read.
func FuzzToken2Handshake(f *testing.F) {
	f.Add(AppendHello(nil, Hello{Session: SessionID{9}, Recv: 5, First: 3, Last: 4}))
	f.Add(AppendWelcome(nil, Welcome{Status: SessionResumed, Recv: 1 << 50}))
	f.Add([]byte{0x04, 0x81, 0x08})
	f.Add(AppendClose(nil, "no"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		if h, err := ReadHello(r); err == nil {
			read := data[:len(data)-r.Len()]
			check.Equal(t, read, AppendHello(nil, h))
			check.True(t, h.First != 0 && h.First-1 <= h.Last, "HELLO %+v accepted", h)
		}
		r = bytes.NewReader(data)
		if w, err := ReadWelcome(r); err == nil {
			read := data[:len(data)-r.Len()]
			check.Equal(t, read, AppendWelcome(nil, w))
		}
	})
}

func TestToken2VectorsAreCanonicalHex(t *testing.T) {
	// The vectors file is edited by hand: every hex string must decode.
	for _, v := range loadToken2Vectors(t).Rejected {
		_, err := hex.DecodeString(v.Hex)
		check.NoError(t, err, v.Name)
	}
}
