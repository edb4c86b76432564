package wire

import (
	"bytes"
	"errors"
	"testing"
)

func TestCodecForPicksToken1(t *testing.T) {
	if c := CodecFor(ProtocolToken2); c != Token2 {
		t.Errorf("CodecFor(token/2) = %v, want Token2", c)
	}
	for _, p := range []string{"", ProtocolToken1, "h2", "token/9"} {
		if c := CodecFor(p); c != Token1 {
			t.Errorf("CodecFor(%q) = %v, want Token1", p, c)
		}
	}
	if got := Token1.Protocol(); got != "token/1" {
		t.Errorf("Token1.Protocol() = %q", got)
	}
	if got := KindAck.String(); got != "ack" {
		t.Errorf("KindAck.String() = %q", got)
	}
}

// Token1 encodes as AppendToken and AppendRemoteClose do, and its decoder
// gives the frames back.
func TestToken1RoundTrip(t *testing.T) {
	tokens := [][]byte{[]byte("plain"), {}, []byte("a\\b\nc"), []byte("\\"), []byte("\n\n")}
	var stream []byte
	for _, tok := range tokens {
		stream = Token1.AppendToken(stream, tok)
	}
	stream, err := Token1.AppendControl(stream, Frame{Kind: KindRemoteClose, Token: []byte("reason")})
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	for _, tok := range tokens {
		want = AppendToken(want, tok)
	}
	want = AppendRemoteClose(want)
	if !bytes.Equal(stream, want) {
		t.Fatalf("Token1 encoded %q, want %q", stream, want)
	}
	dec, err := Token1.NewDecoder(64)
	if err != nil {
		t.Fatal(err)
	}
	frames, err := dec.AppendFrames(nil, stream)
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) != len(tokens)+1 || frames[len(tokens)].Kind != KindRemoteClose {
		t.Fatalf("decoded %v", frames)
	}
	for i, tok := range tokens {
		if frames[i].Kind != KindToken || !bytes.Equal(frames[i].Token, tok) {
			t.Errorf("frame %d = %v, want token %q", i, frames[i], tok)
		}
	}
	if _, err := Token1.NewDecoder(0); !errors.Is(err, ErrInvalidLimit) {
		t.Errorf("NewDecoder(0): %v, want ErrInvalidLimit", err)
	}
}

func TestToken1HasNoAck(t *testing.T) {
	dst := []byte("x")
	got, err := Token1.AppendControl(dst, Frame{Kind: KindAck, Value: 7})
	if !errors.Is(err, ErrUnsupportedFrame) || !bytes.Equal(got, dst) {
		t.Errorf("AppendControl(ack) = %q, %v; want dst unchanged and ErrUnsupportedFrame", got, err)
	}
	if _, err := Token1.AppendControl(nil, Frame{Kind: KindToken}); !errors.Is(err, ErrUnsupportedFrame) {
		t.Errorf("AppendControl(token): %v, want ErrUnsupportedFrame", err)
	}
}

// WholeFrames finds the end of the last whole frame of every prefix, and
// counts the data frames before it (remoteClose is not one, an escaped
// backslash before the newline is).
func TestToken1WholeFrames(t *testing.T) {
	var stream []byte
	var ends []int // frame ends
	var toks []int // data frames up to each end
	n := 0
	for i, tok := range [][]byte{[]byte("ab"), []byte("\\"), nil, []byte("x\ny")} {
		stream = AppendToken(stream, tok)
		n++
		ends, toks = append(ends, len(stream)), append(toks, n)
		if i == 1 {
			stream = AppendRemoteClose(stream)
			ends, toks = append(ends, len(stream)), append(toks, n)
		}
	}
	for p := 0; p <= len(stream); p++ {
		wantEnd, wantToks := 0, 0
		for i, e := range ends {
			if e <= p {
				wantEnd, wantToks = e, toks[i]
			}
		}
		end, tokens := Token1.WholeFrames(stream[:p])
		if end != wantEnd || tokens != wantToks {
			t.Errorf("WholeFrames(%q) = %d, %d; want %d, %d", stream[:p], end, tokens, wantEnd, wantToks)
		}
	}
}

func TestToken1FrameSizeHint(t *testing.T) {
	for _, n := range []int{0, 1, 100, 1 << 20} {
		if h := Token1.FrameSizeHint(n); h < n+1 {
			t.Errorf("FrameSizeHint(%d) = %d, under the frame of a token without escapes", n, h)
		}
	}
}
