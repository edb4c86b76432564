package wire

// Token2 is the [Codec] of token/2 (TOKEN2.md): DATA frames
// ([AppendData], [Token2Decoder]) and its control frames: ACK
// ([KindAck], the count in [Frame.Value]), CLOSE ([KindRemoteClose], the
// reason in [Frame.Token]) and END ([KindEnd]). HELLO and WELCOME are not
// frames of the stream: they are exchanged once, right after the TLS
// handshake ([AppendHello], [ReadHello], [AppendWelcome], [ReadWelcome]).
var Token2 Codec = token2{}

type token2 struct{}

func (token2) Protocol() string { return ProtocolToken2 }

func (token2) NewDecoder(maxTokenSize int) (FrameDecoder, error) {
	d, err := NewToken2Decoder(maxTokenSize)
	if err != nil {
		return nil, err
	}
	return d, nil
}

func (token2) AppendToken(dst, token []byte) []byte { return AppendData(dst, token) }

// AppendControl appends ACK (f.Value), CLOSE (f.Token, the reason: cut to
// [MaxControlPayload] bytes and made valid UTF-8) or END. Other kinds are
// ErrUnsupportedFrame.
func (token2) AppendControl(dst []byte, f Frame) ([]byte, error) {
	switch f.Kind {
	case KindAck:
		return AppendAck(dst, f.Value), nil
	case KindRemoteClose:
		if f.Value != 0 {
			return dst, ErrUnsupportedFrame
		}
		return AppendClose(dst, string(f.Token)), nil
	case KindEnd:
		if f.Value != 0 || len(f.Token) != 0 {
			return dst, ErrUnsupportedFrame
		}
		return AppendEnd(dst), nil
	}
	return dst, ErrUnsupportedFrame
}

// FrameSizeHint is exact: the type, the length and the token.
func (token2) FrameSizeHint(n int) int { return DataLen(n) }

// WholeFrames walks the frames by their lengths.
func (token2) WholeFrames(b []byte) (end, tokens int) {
	for end < len(b) {
		t, size, ok := NextFrame2(b[end:])
		if !ok {
			break
		}
		if t == TypeData {
			tokens++
		}
		end += size
	}
	return end, tokens
}
