package wire

import "errors"

// A Codec is one wire protocol: how tokens and control frames become bytes
// on a connection, and back. The connection actor of package actors knows no
// protocol's bytes; it asks the codec of each connection, chosen once the
// TLS handshake is done from the protocol ALPN negotiated ([CodecFor]).
// [Token1] is token/1, the protocol of npm token-server 1.0.10.
//
// How the runtime uses a codec, which is what an implementation must honour:
//
//   - Encoding happens on the goroutines of the callers of Send (many at
//     once) and on the connection's actor: AppendToken, AppendControl and
//     FrameSizeHint must be safe for concurrent use and keep no state. A
//     codec whose frames carry a per-direction sequence number keeps it
//     implicit (the n-th data frame of a direction is number n), so that
//     encoding needs none.
//   - Each connection has one [FrameDecoder] for what it reads, fed every
//     chunk in order by one goroutine at a time.
//   - The frames of one connection's outbound direction are written in the
//     order they were encoded, in batches that start and end at frame
//     boundaries. When a write fails after some bytes of a batch, the
//     runtime asks WholeFrames where the last frame written in full ends.
//   - Frames that were never written (or maybe not) go back to the user as
//     tokens: the runtime decodes them with a fresh decoder of the same
//     codec (NewDecoder), so a data frame must decode the same whatever
//     frames come before it in the stream.
//   - Control frames other than [KindRemoteClose] are the runtime's own
//     (acknowledgements): it never hands them to the user.
//   - A protocol whose peers exchange something of their own before their
//     first frame (a hello) does it right after the TLS handshake, on the
//     goroutine that did the handshake, before the connection's frames are
//     read or written; that exchange is not part of this interface.
type Codec interface {
	// Protocol is the protocol's ALPN name, "token/1" say.
	Protocol() string
	// NewDecoder returns a decoder for one inbound stream that accepts
	// decoded tokens of at most maxTokenSize bytes; it returns
	// [ErrInvalidLimit] when maxTokenSize <= 0.
	NewDecoder(maxTokenSize int) (FrameDecoder, error)
	// AppendToken appends the data frame of token (any bytes, the empty
	// token included) to dst and returns the extended slice.
	AppendToken(dst, token []byte) []byte
	// AppendControl appends the control frame f (f.Kind is not KindToken)
	// to dst and returns the extended slice. A kind the protocol has not,
	// or a value it cannot carry, is [ErrUnsupportedFrame] (dst unchanged).
	AppendControl(dst []byte, f Frame) ([]byte, error)
	// FrameSizeHint is a likely size of the data frame of a token of n
	// bytes, to size buffers with: a guess, not a bound.
	FrameSizeHint(n int) int
	// WholeFrames takes encoded frames b that start at a frame boundary
	// (b may end inside a frame) and returns the length of b's longest
	// prefix of whole frames and how many of those are data frames.
	WholeFrames(b []byte) (end, tokens int)
}

// A PieceEncoder is a [Codec] whose data frame can be encoded in pieces, so
// that the runtime writes a large token's first piece before it has encoded
// the rest ([Token1] is one: [AppendTokenPiece]). AppendTokenPiece appends
// the piece of the frame that encodes part of a token: the pieces of the
// token's consecutive parts, in order and the last one with last set, are
// the bytes of AppendToken for the whole token. It is safe for concurrent
// use and keeps no state, as AppendToken. The runtime keeps a frame's pieces
// together: nothing is written between them, and [Codec.WholeFrames] sees a
// frame begun but not ended as not whole.
type PieceEncoder interface {
	AppendTokenPiece(dst, part []byte, last bool) []byte
}

// A BufferSource is a [FrameDecoder] whose buffers for tokens that span
// chunks can come from the caller: both protocols' decoders are. By default
// a decoder allocates each such buffer; after SetBufferSource it asks get
// for one of capacity at least n (n > 0; its length and bytes do not
// matter) instead, so that a caller that knows when it is done with a
// token can give its buffer back to a pool, and the next token that spans
// chunks reuses it. The token handed
// out is then a slice of a buffer from get (its capacity cut to its
// length), unless the decoder had to grow it past what it asked for.
// get(n) must return a buffer nobody else uses.
type BufferSource interface {
	SetBufferSource(get func(n int) []byte)
}

// A FrameDecoder decodes one inbound stream, fed in chunks of any size split
// anywhere; it returns the complete frames in order and keeps the frame in
// progress. It is not safe for concurrent use. Protocol errors are typed
// (matched with errors.Is) and sticky: every later call returns the same
// error. [*Decoder] is token/1's.
type FrameDecoder interface {
	// AppendFrames decodes chunk and appends every frame it completes to
	// dst, in order. A frame's Token may alias chunk (see ChunkKept); the
	// decoder keeps no reference to chunk after it returns. On a protocol
	// error it returns the frames decoded before it with the error.
	AppendFrames(dst []Frame, chunk []byte) ([]Frame, error)
	// AppendFramesInPlace is AppendFrames for a caller that hands chunk
	// over: the decoder may overwrite it, so that no frame that lies wholly
	// inside chunk needs an allocation.
	AppendFramesInPlace(dst []Frame, chunk []byte) ([]Frame, error)
	// ChunkKept reports whether a frame of the last call refers to that
	// call's chunk. When it does not, the caller may reuse the chunk at
	// once.
	ChunkKept() bool
	// Buffered is how many bytes of the frame in progress the decoder
	// holds: zero between frames. A stream that ends with Buffered() > 0
	// ended inside a frame.
	Buffered() int
	// Held is the memory the decoder holds for frames in progress, in
	// bytes: the capacity of its buffers, at least Buffered. A server's
	// memory budget counts it.
	Held() int
}

// FrameKind says what a [Frame] is.
type FrameKind uint8

const (
	// KindToken is a data frame; [Frame.Token] holds the decoded token.
	KindToken FrameKind = iota
	// KindRemoteClose is the remoteClose control frame: the sender (a
	// server) is closing and asks its peer to close its side. In token/1
	// it carries nothing (the frame 0x5C 0x0A); a protocol may let it carry
	// a reason, in [Frame.Token].
	KindRemoteClose
	// KindAck is a cumulative acknowledgement: the sender's handler has
	// taken every data frame of the other direction up to [Frame.Value]
	// (a count of data frames since the stream began). token/1 has none;
	// it is the runtime's own, never handed to the user.
	KindAck
	// KindEnd is the clean end of the sender's data on this connection
	// (token/2's END, TOKEN2.md section 7): it sends no more data frames,
	// acknowledgements still. token/1 has none (it ends with the stream);
	// it is the runtime's own, never handed to the user.
	KindEnd
)

// String returns "token", "remoteClose", "ack", "end", or "FrameKind(n)" for
// other values.
func (k FrameKind) String() string {
	switch k {
	case KindToken:
		return "token"
	case KindRemoteClose:
		return "remoteClose"
	case KindAck:
		return "ack"
	case KindEnd:
		return "end"
	}
	return "FrameKind(" + itoa(int(k)) + ")"
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// Frame is one frame, decoded or to encode.
type Frame struct {
	// Kind is the frame's kind.
	Kind FrameKind
	// Token is the frame's bytes: the token of a KindToken frame (non-nil,
	// possibly empty, its capacity equal to its length), or what a control
	// frame carries (nil when it carries nothing, as token/1's remoteClose).
	// A decoded Token may alias the chunk passed to [Decoder.AppendFrames];
	// see there for when.
	Token []byte
	// Value is the number a control frame carries (KindAck's count); zero
	// for the others.
	Value uint64
}

// ErrUnsupportedFrame is returned by [Codec.AppendControl] for a control
// frame the protocol cannot carry (an acknowledgement in token/1, say).
var ErrUnsupportedFrame = errors.New("wire: frame not supported by the protocol")

// ProtocolToken1 is token/1's ALPN name.
const ProtocolToken1 = "token/1"

// CodecFor returns the codec of the protocol negotiated by ALPN (a
// tls.ConnectionState's NegotiatedProtocol). No protocol (a peer without
// ALPN, as the Node original) and one it does not know give token/1.
func CodecFor(protocol string) Codec {
	switch protocol {
	case ProtocolToken2:
		return Token2
	case ProtocolToken1:
		return Token1
	}
	return Token1
}
