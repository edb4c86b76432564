package wire

import (
	"strconv"
	"unicode/utf8"
)

// Token2Decoder is a streaming token/2 decoder for the frames that follow
// the handshake (HELLO and WELCOME are read by [ReadHello] and
// [ReadWelcome]). Feed it the byte stream in chunks of any size, split
// anywhere; it returns the complete frames in order and keeps the frame in
// progress. DATA becomes a [KindToken] frame, ACK a [KindAck] frame (its
// value in [Frame.Value]), CLOSE a [KindRemoteClose] frame (its reason in
// [Frame.Token]) and END a [KindEnd] frame.
//
// It is strict: an unknown type, a length that is no minimal uvarint, a
// control frame over [MaxControlPayload] or with a malformed payload, and
// HELLO or WELCOME after the handshake, an END with a payload, and DATA or
// END after an END are a [*FrameError]; a DATA frame
// over the maximum token size is a [*TokenTooLargeError] as soon as its
// length is read, before its payload arrives. Errors are sticky, as with
// token/1's [Decoder].
//
// A DATA frame that lies wholly inside a chunk is returned as a sub-slice of
// it, never copied (nothing is escaped in token/2); one that spans chunks is
// collected into a buffer of its own, allocated once at its final size for
// tokens up to 1 MiB and grown as its bytes arrive beyond that, so that a
// header alone cannot make the decoder hold more than 1 MiB. A
// Token2Decoder is not safe for concurrent use; make one with
// [NewToken2Decoder].
type Token2Decoder struct {
	limit  int
	offset int64 // stream offset of the next byte fed
	start  int64 // stream offset of the frame in progress

	// The header in progress: the type and the length's bytes so far.
	hdr  [1 + maxUvarintLen]byte
	nhdr int

	// The payload in progress, once the header is complete.
	inBody bool
	typ    FrameType
	size   int
	buf    []byte

	ended bool // END was decoded: no DATA or END may follow
	err   error
	kept  bool
	get   func(n int) []byte
}

// eagerPayload is the largest payload a decoder allocates at its final size
// when its header arrives; a larger one grows as its bytes do.
const eagerPayload = 1 << 20

// NewToken2Decoder returns a token/2 decoder that accepts tokens of at most
// maxTokenSize bytes. It returns [ErrInvalidLimit] when maxTokenSize <= 0.
func NewToken2Decoder(maxTokenSize int) (*Token2Decoder, error) {
	if maxTokenSize <= 0 {
		return nil, ErrInvalidLimit
	}
	return &Token2Decoder{limit: maxTokenSize}, nil
}

// MaxTokenSize returns the decoder's maximum token size in bytes.
func (d *Token2Decoder) MaxTokenSize() int { return d.limit }

// SetBufferSource makes the decoder take the buffer of each DATA payload
// that spans chunks (up to 1 MiB; a larger one grows as its bytes arrive)
// from get (see [BufferSource]).
func (d *Token2Decoder) SetBufferSource(get func(n int) []byte) { d.get = get }

// Buffered returns the number of bytes of the frame in progress that the
// decoder holds (header and payload so far); zero between frames and after
// an error.
func (d *Token2Decoder) Buffered() int {
	if d.inBody {
		return d.nhdr + len(d.buf)
	}
	return d.nhdr
}

// Held returns the memory the decoder holds for the frame in progress: the
// capacity of its payload buffer (allocated at the payload's size, up to
// 1 MiB, when its header arrives) and the header bytes.
func (d *Token2Decoder) Held() int { return cap(d.buf) + d.nhdr }

// Remaining returns how many more bytes the payload in progress needs, or 0
// between frames and while a header is incomplete.
func (d *Token2Decoder) Remaining() int {
	if d.inBody {
		return d.size - len(d.buf)
	}
	return 0
}

// ChunkKept reports whether a token returned by the last call refers to the
// chunk of that call; when it does not, the caller may reuse the chunk at
// once.
func (d *Token2Decoder) ChunkKept() bool { return d.kept }

// AppendFramesInPlace is [Token2Decoder.AppendFrames]: token/2 never
// rewrites a chunk, so handing it over changes nothing. It exists so that
// both protocols' decoders have the same methods.
func (d *Token2Decoder) AppendFramesInPlace(dst []Frame, chunk []byte) ([]Frame, error) {
	return d.AppendFrames(dst, chunk)
}

// AppendFrames decodes chunk and appends every frame it completes to dst, in
// order, and returns the extended slice. A token of a DATA frame that lies
// wholly inside chunk aliases chunk (its capacity cut to its length); a
// CLOSE's reason never does. On a protocol error it returns the frames
// decoded before the error together with the error, and the decoder stays
// failed.
func (d *Token2Decoder) AppendFrames(dst []Frame, chunk []byte) ([]Frame, error) {
	d.kept = false
	if d.err != nil {
		return dst, d.err
	}
	base := d.offset
	i := 0
	for i < len(chunk) {
		if d.inBody {
			take := min(d.size-len(d.buf), len(chunk)-i)
			d.buf = d.grow(d.buf, take)
			d.buf = append(d.buf, chunk[i:i+take]...)
			i += take
			if len(d.buf) < d.size {
				break
			}
			payload := d.buf
			d.buf, d.inBody, d.nhdr = nil, false, 0
			var err error
			if dst, err = d.complete(dst, d.typ, payload, d.start, false); err != nil {
				return dst, d.fail(err)
			}
			continue
		}
		if d.nhdr > 0 {
			// A header split across chunks: take its bytes one by one.
			d.hdr[d.nhdr] = chunk[i]
			d.nhdr++
			i++
			n, k, bad := readUvarint(d.hdr[1:d.nhdr])
			if bad != "" {
				return dst, d.fail(&FrameError{Offset: d.start, Type: FrameType(d.hdr[0]), Reason: "length: " + bad})
			}
			if k == 0 {
				continue
			}
			if err := d.checkHeader(FrameType(d.hdr[0]), n, d.start); err != nil {
				return dst, d.fail(err)
			}
			d.beginBody(FrameType(d.hdr[0]), int(n))
			if d.size == 0 {
				var err error
				if dst, err = d.finishEmpty(dst); err != nil {
					return dst, d.fail(err)
				}
			}
			continue
		}
		// A frame that starts here.
		rest := chunk[i:]
		at := base + int64(i)
		t := FrameType(rest[0])
		if err := d.checkType(t, at); err != nil {
			return dst, d.fail(err)
		}
		n, k, bad := readUvarint(rest[1:])
		if bad != "" {
			return dst, d.fail(&FrameError{Offset: at, Type: t, Reason: "length: " + bad})
		}
		if k == 0 {
			d.start = at
			d.nhdr = copy(d.hdr[:], rest)
			break
		}
		if err := d.checkHeader(t, n, at); err != nil {
			return dst, d.fail(err)
		}
		hl, size := 1+k, int(n)
		if len(rest) >= hl+size {
			var err error
			if dst, err = d.complete(dst, t, rest[hl:hl+size:hl+size], at, true); err != nil {
				return dst, d.fail(err)
			}
			i += hl + size
			continue
		}
		d.start, d.nhdr = at, hl
		d.beginBody(t, size)
		d.buf = d.grow(d.buf, len(rest)-hl)
		d.buf = append(d.buf, rest[hl:]...)
		break
	}
	d.offset += int64(len(chunk))
	return dst, nil
}

// checkType refuses a type byte that may not start a frame after the
// handshake, or after an END.
func (d *Token2Decoder) checkType(t FrameType, at int64) error {
	switch t {
	case TypeAck, TypeClose:
		return nil
	case TypeData, TypeEnd:
		if d.ended {
			return &FrameError{Offset: at, Type: t, Reason: t.String() + " after END"}
		}
		return nil
	case TypeHello, TypeWelcome:
		return &FrameError{Offset: at, Type: t, Reason: "only the first frame of a connection may be " + t.String()}
	}
	return &FrameError{Offset: at, Type: t, Reason: "unknown frame type"}
}

// checkHeader checks a frame's length against the limits.
func (d *Token2Decoder) checkHeader(t FrameType, n uint64, at int64) error {
	if err := d.checkType(t, at); err != nil {
		return err
	}
	if t == TypeData {
		if n > uint64(d.limit) {
			return &TokenTooLargeError{Limit: d.limit, Offset: at}
		}
		return nil
	}
	if n > MaxControlPayload {
		return &FrameError{Offset: at, Type: t, Reason: "control frame of " + strconv.FormatUint(n, 10) + " bytes, over 1024"}
	}
	return nil
}

// beginBody starts collecting the payload of a frame whose header is read.
func (d *Token2Decoder) beginBody(t FrameType, size int) {
	d.inBody, d.typ, d.size = true, t, size
	switch {
	case size > 0 && size <= eagerPayload && t == TypeData && d.get != nil:
		d.buf = d.get(size)[:0]
	case size <= eagerPayload:
		d.buf = make([]byte, 0, size)
	default:
		d.buf = nil
	}
}

// finishEmpty completes a frame with an empty payload whose header ended a
// chunk's bytes.
func (d *Token2Decoder) finishEmpty(dst []Frame) ([]Frame, error) {
	d.buf, d.inBody, d.nhdr = nil, false, 0
	return d.complete(dst, d.typ, []byte{}, d.start, false)
}

// grow returns buf with room for n more bytes of the payload in progress:
// geometric growth, capped at the payload's size.
func (d *Token2Decoder) grow(buf []byte, n int) []byte {
	need := len(buf) + n
	if need <= cap(buf) {
		return buf
	}
	c := min(max(2*cap(buf), need, minGrow), d.size)
	nb := make([]byte, len(buf), c)
	copy(nb, buf)
	return nb
}

// complete turns a whole frame's payload into a Frame. inChunk says whether
// payload lies in the caller's chunk.
func (d *Token2Decoder) complete(dst []Frame, t FrameType, payload []byte, at int64, inChunk bool) ([]Frame, error) {
	switch t {
	case TypeData:
		if inChunk && len(payload) > 0 {
			d.kept = true
		}
		// Capacity cut to the length: a buffer from a BufferSource may be
		// larger than the payload.
		return append(dst, Frame{Kind: KindToken, Token: payload[:len(payload):len(payload)]}), nil
	case TypeAck:
		v, k, bad := readUvarint(payload)
		switch {
		case bad != "":
			return dst, &FrameError{Offset: at, Type: t, Reason: bad}
		case k == 0 || k != len(payload):
			return dst, &FrameError{Offset: at, Type: t, Reason: "payload is not one uvarint"}
		}
		return append(dst, Frame{Kind: KindAck, Value: v}), nil
	case TypeEnd:
		if len(payload) != 0 {
			return dst, &FrameError{Offset: at, Type: t, Reason: "END with a payload"}
		}
		d.ended = true
		return append(dst, Frame{Kind: KindEnd}), nil
	default: // TypeClose: checkType let nothing else through
		if !utf8.Valid(payload) {
			return dst, &FrameError{Offset: at, Type: t, Reason: "reason is not valid UTF-8"}
		}
		reason := make([]byte, len(payload))
		copy(reason, payload)
		return append(dst, Frame{Kind: KindRemoteClose, Token: reason}), nil
	}
}

// fail records err as the decoder's sticky error and releases the frame in
// progress.
func (d *Token2Decoder) fail(err error) error {
	d.err = err
	d.buf, d.inBody, d.nhdr = nil, false, 0
	return err
}
