package wire

import "bytes"

// Token1 is the [Codec] of token/1: escaped tokens ended by a newline
// ([AppendToken], [Decoder]), and the remoteClose control frame
// ([AppendRemoteClose]). It has no other control frame. It is a
// [PieceEncoder].
var Token1 Codec = token1{}

type token1 struct{}

func (token1) Protocol() string { return ProtocolToken1 }

func (token1) NewDecoder(maxTokenSize int) (FrameDecoder, error) {
	d, err := NewDecoder(maxTokenSize)
	if err != nil {
		return nil, err
	}
	return d, nil
}

func (token1) AppendToken(dst, token []byte) []byte { return AppendToken(dst, token) }

func (token1) AppendTokenPiece(dst, part []byte, last bool) []byte {
	return AppendTokenPiece(dst, part, last)
}

// AppendControl appends remoteClose; token/1's remoteClose carries no
// reason, so f.Token is left out. Other kinds are ErrUnsupportedFrame.
func (token1) AppendControl(dst []byte, f Frame) ([]byte, error) {
	if f.Kind != KindRemoteClose || f.Value != 0 {
		return dst, ErrUnsupportedFrame
	}
	return AppendRemoteClose(dst), nil
}

// FrameSizeHint allows for one escape in eight bytes, and the newline.
func (token1) FrameSizeHint(n int) int { return n + n/8 + 1 }

// WholeFrames: every frame ends with the first newline after its start (a
// newline inside a token is escaped); the frame "\\\n" is remoteClose.
func (token1) WholeFrames(b []byte) (end, tokens int) {
	for {
		nl := bytes.IndexByte(b[end:], frameEnd)
		if nl < 0 {
			return end, tokens
		}
		if nl != 1 || b[end] != escapeChar {
			tokens++
		}
		end += nl + 1
	}
}
