package wire

import (
	"encoding/binary"
	"unicode/utf8"
)

// token/2 (TOKEN2.md beside this file is its specification): typed,
// length-prefixed frames, acknowledgements and resumable sessions between
// tokenserver-go peers that negotiate it by ALPN. This file holds its frame
// types and encoders; token2_decode.go the streaming decoder, and
// token2_handshake.go the HELLO and WELCOME that open a connection.

// ProtocolToken2 is token/2's ALPN name. A client that speaks token/2
// offers it, then [ProtocolToken1]; a connection on which no protocol was
// selected speaks token/1.
const ProtocolToken2 = "token/2"

// FrameType is the first byte of a token/2 frame.
type FrameType byte

// The token/2 frame types (TOKEN2.md, section 3).
const (
	// TypeData carries one token.
	TypeData FrameType = 0x01
	// TypeAck carries a cumulative acknowledgement.
	TypeAck FrameType = 0x02
	// TypeClose ends the sender's session, with a reason.
	TypeClose FrameType = 0x03
	// TypeHello is the client's first frame.
	TypeHello FrameType = 0x04
	// TypeWelcome is the server's first frame.
	TypeWelcome FrameType = 0x05
	// TypeEnd ends the sender's data: the clean end of its session.
	TypeEnd FrameType = 0x06
)

// String returns the frame type's name as the specification writes it, or
// "FrameType(0xNN)".
func (t FrameType) String() string {
	switch t {
	case TypeData:
		return "DATA"
	case TypeAck:
		return "ACK"
	case TypeClose:
		return "CLOSE"
	case TypeHello:
		return "HELLO"
	case TypeWelcome:
		return "WELCOME"
	case TypeEnd:
		return "END"
	}
	const hexDigits = "0123456789abcdef"
	return "FrameType(0x" + string([]byte{hexDigits[t>>4], hexDigits[t&0xf]}) + ")"
}

// MaxControlPayload is the largest payload of a token/2 control frame (ACK,
// CLOSE, HELLO, WELCOME, END); a longer one is a protocol error.
const MaxControlPayload = 1024

// maxUvarintLen is the longest uvarint.
const maxUvarintLen = binary.MaxVarintLen64

// SessionID is a token/2 session's id: 16 random bytes the client makes once.
type SessionID [16]byte

// Hello is the payload of HELLO, the client's first frame on a token/2
// connection (TOKEN2.md, section 5).
type Hello struct {
	// Session is the client's session id.
	Session SessionID
	// Recv is the last sequence number the client received from the server
	// in this session (0: none).
	Recv uint64
	// First is the number of the first data frame the client sends on this
	// connection if the server does not know the session: its oldest
	// unacknowledged frame, or its next new one. At least 1.
	First uint64
	// Last is the highest number the client wrote in this session before
	// (0: none). Frames First to Last may have been delivered already.
	Last uint64
}

// SessionStatus is the server's answer to HELLO.
type SessionStatus byte

const (
	// SessionNew: the server did not know the session and made it.
	SessionNew SessionStatus = 0
	// SessionResumed: the server knew the session; it continues.
	SessionResumed SessionStatus = 1
)

// String returns "new", "resumed", or "SessionStatus(n)".
func (s SessionStatus) String() string {
	switch s {
	case SessionNew:
		return "new"
	case SessionResumed:
		return "resumed"
	}
	return "SessionStatus(" + itoa(int(s)) + ")"
}

// Welcome is the payload of WELCOME, the server's first frame on a token/2
// connection (TOKEN2.md, section 5).
type Welcome struct {
	// Status says whether the session is new or resumed.
	Status SessionStatus
	// Recv is the last sequence number the server received from the client
	// in this session: the client sends again from Recv+1.
	Recv uint64
}

// DataLen returns the length of the DATA frame that [AppendData] appends for
// a token of n bytes.
func DataLen(n int) int { return 1 + uvarintLen(uint64(n)) + n }

// AppendData appends the token/2 DATA frame for token to dst and returns the
// extended slice. It grows dst at most once.
func AppendData(dst, token []byte) []byte {
	dst = grow(dst, DataLen(len(token)))
	dst = append(dst, byte(TypeData))
	dst = binary.AppendUvarint(dst, uint64(len(token)))
	return append(dst, token...)
}

// AppendAck appends the token/2 ACK frame acknowledging every data frame up
// to and including seq, and returns the extended slice.
func AppendAck(dst []byte, seq uint64) []byte {
	dst = append(dst, byte(TypeAck), byte(uvarintLen(seq)))
	return binary.AppendUvarint(dst, seq)
}

// AppendClose appends the token/2 CLOSE frame with reason and returns the
// extended slice. A reason longer than [MaxControlPayload] bytes is cut at a
// character boundary, and invalid UTF-8 in it is replaced, so that the frame
// is always one a decoder accepts.
func AppendClose(dst []byte, reason string) []byte {
	if !utf8.ValidString(reason) {
		reason = string([]rune(reason)) // invalid bytes become U+FFFD
	}
	if len(reason) > MaxControlPayload {
		cut := MaxControlPayload
		for cut > 0 && !utf8.RuneStart(reason[cut]) {
			cut--
		}
		reason = reason[:cut]
	}
	dst = append(dst, byte(TypeClose))
	dst = binary.AppendUvarint(dst, uint64(len(reason)))
	return append(dst, reason...)
}

// AppendEnd appends the token/2 END frame (the sender sends no more DATA on
// this connection) and returns the extended slice.
func AppendEnd(dst []byte) []byte { return append(dst, byte(TypeEnd), 0) }

// AppendHello appends the token/2 HELLO frame for h and returns the extended
// slice.
func AppendHello(dst []byte, h Hello) []byte {
	n := len(h.Session) + uvarintLen(h.Recv) + uvarintLen(h.First) + uvarintLen(h.Last)
	dst = append(dst, byte(TypeHello), byte(n))
	dst = append(dst, h.Session[:]...)
	dst = binary.AppendUvarint(dst, h.Recv)
	dst = binary.AppendUvarint(dst, h.First)
	return binary.AppendUvarint(dst, h.Last)
}

// AppendWelcome appends the token/2 WELCOME frame for w and returns the
// extended slice.
func AppendWelcome(dst []byte, w Welcome) []byte {
	dst = append(dst, byte(TypeWelcome), byte(1+uvarintLen(w.Recv)), byte(w.Status))
	return binary.AppendUvarint(dst, w.Recv)
}

// NextFrame2 reports the type and the total length (header and payload) of
// the token/2 frame at the start of b, for a caller that walks frames it
// encoded itself (to count them, or to cut a batch between two frames). ok is
// false when b does not start with a whole frame.
func NextFrame2(b []byte) (t FrameType, size int, ok bool) {
	if len(b) < 2 {
		return 0, 0, false
	}
	n, k := binary.Uvarint(b[1:])
	if k <= 0 || n > uint64(len(b)) {
		return 0, 0, false
	}
	size = 1 + k + int(n)
	if size > len(b) {
		return 0, 0, false
	}
	return FrameType(b[0]), size, true
}

// uvarintLen returns the length of v as a uvarint.
func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// readUvarint decodes the strict uvarint at the start of b (TOKEN2.md,
// section 2): it returns the value and its length, n == 0 when b ends before
// the last byte, or a reason when the bytes are no minimal uvarint of at most
// 64 bits.
func readUvarint(b []byte) (v uint64, n int, bad string) {
	for i := 0; i < len(b); i++ {
		c := b[i]
		if i == maxUvarintLen-1 && c > 1 {
			return 0, 0, "uvarint over 64 bits"
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			if c == 0 && i > 0 {
				return 0, 0, "uvarint not minimal"
			}
			return v, i + 1, ""
		}
	}
	return 0, 0, "" // the tenth byte either ends it or is refused above
}
