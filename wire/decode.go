package wire

import "bytes"

// Decoder is a streaming token/1 decoder. Feed it the byte stream in chunks
// of any size, split anywhere, with [Decoder.AppendFrames]; it returns the
// complete frames in order and keeps the frame in progress.
//
// The frame in progress is held in decoded (unescaped) form plus a flag for a
// pending backslash, so a decoder never holds more than its maximum token size
// (see [Decoder.Buffered]), and it fails as soon as the frame in progress goes
// over that size instead of waiting for the newline.
//
// Protocol errors ([*InvalidEscapeError], [*TokenTooLargeError]) are sticky:
// the decoder does not resynchronise, and every later call returns the same
// error. A Decoder is not safe for concurrent use; the zero value is not
// usable, make one with [NewDecoder].
type Decoder struct {
	limit   int
	offset  int64  // stream offset of the next byte to be fed
	buf     []byte // decoded bytes of the frame in progress
	pending bool   // the frame in progress ends with an unpaired backslash
	hint    int    // size of the last large token: the next one's first guess
	err     error  // sticky protocol error
	kept    bool   // a frame of the last call refers to its chunk
	get     func(n int) []byte
}

// NewDecoder returns a decoder that accepts decoded tokens of at most
// maxTokenSize bytes (a token of exactly maxTokenSize bytes is accepted). It
// returns [ErrInvalidLimit] when maxTokenSize <= 0. [DefaultMaxTokenSize] is
// the usual choice.
func NewDecoder(maxTokenSize int) (*Decoder, error) {
	if maxTokenSize <= 0 {
		return nil, ErrInvalidLimit
	}
	return &Decoder{limit: maxTokenSize}, nil
}

// MaxTokenSize returns the decoder's maximum decoded token size in bytes.
func (d *Decoder) MaxTokenSize() int { return d.limit }

// SetBufferSource makes the decoder take the buffer of each token that
// spans chunks from get (see [BufferSource]).
func (d *Decoder) SetBufferSource(get func(n int) []byte) { d.get = get }

// newBuffer is an empty buffer of capacity n for a token that spans chunks.
func (d *Decoder) newBuffer(n int) []byte {
	if d.get != nil {
		return d.get(n)[:0]
	}
	return make([]byte, 0, n)
}

// Buffered returns the number of bytes of the frame in progress that the
// decoder currently holds: its decoded bytes, plus one for a pending backslash
// whose partner has not arrived yet. It is zero between frames and after an
// error, and never more than [Decoder.MaxTokenSize].
func (d *Decoder) Buffered() int {
	if d.pending {
		return len(d.buf) + 1
	}
	return len(d.buf)
}

// Held returns the memory the decoder holds for the frame in progress: the
// capacity of its buffer, which it may size in advance for a large frame
// and keeps between frames while a backslash waits for its partner.
func (d *Decoder) Held() int { return max(cap(d.buf), d.Buffered()) }

// AppendFrames decodes chunk (any size, split anywhere, including inside an
// escape pair) and appends every frame it completes to dst, in order, and
// returns the extended slice.
//
// A token frame that lies wholly inside chunk and needs no unescaping is
// returned as a sub-slice of chunk, without copying or allocating; its
// capacity is cut to its length so that appending to it cannot overwrite
// chunk. Such tokens are only valid as long as the caller keeps chunk
// unchanged. Tokens with escapes, or of frames that span chunks, are freshly
// allocated. The decoder keeps no reference to chunk after it returns: the
// frame in progress is copied.
//
// On a protocol error AppendFrames returns the frames decoded before the error
// together with the error, which is an [*InvalidEscapeError] or a
// [*TokenTooLargeError]. The decoder then stays failed: every later call
// returns dst unchanged and the same error.
func (d *Decoder) AppendFrames(dst []Frame, chunk []byte) ([]Frame, error) {
	return d.appendFrames(dst, chunk, false)
}

// AppendFramesInPlace is [Decoder.AppendFrames] for a caller that hands chunk
// over: the decoder may overwrite it. Tokens with escapes that lie wholly
// inside chunk are unescaped in place (unescaping never grows a body), so
// they alias chunk too, and no frame wholly inside chunk allocates. Frames
// that span chunks are still decoded into a buffer of their own.
func (d *Decoder) AppendFramesInPlace(dst []Frame, chunk []byte) ([]Frame, error) {
	return d.appendFrames(dst, chunk, true)
}

// ChunkKept reports whether a token returned by the last call of
// [Decoder.AppendFrames] or [Decoder.AppendFramesInPlace] refers to the
// chunk of that call. When it does not (every token it completed spans
// chunks, or there was none), the caller may reuse the chunk at once.
func (d *Decoder) ChunkKept() bool { return d.kept }

func (d *Decoder) appendFrames(dst []Frame, chunk []byte, inPlace bool) ([]Frame, error) {
	d.kept = false
	if d.err != nil {
		return dst, d.err
	}
	base := d.offset
	var arena []byte // room for the unescaped tokens of this chunk
	i := 0
	for i < len(chunk) {
		rest := chunk[i:]
		nl := bytes.IndexByte(rest, frameEnd)
		if nl < 0 {
			// The chunk ends inside a frame: keep its decoded bytes. A frame
			// that starts here is likely as large as the last large one:
			// size its buffer for that once rather than growing it.
			if len(d.buf) == 0 && !d.pending && cap(d.buf) < d.hint {
				d.buf = d.newBuffer(d.hint)
			}
			var err error
			if d.buf, err = d.unescape(d.buf, rest, base+int64(i), true); err != nil {
				return dst, d.fail(err)
			}
			break
		}
		body := rest[:nl]
		var tok []byte
		if len(d.buf) == 0 && !d.pending {
			// A frame that starts and ends inside chunk.
			bs := bytes.IndexByte(body, escapeChar)
			if bs < 0 {
				if nl > d.limit {
					return dst, d.fail(d.tooLarge(base + int64(i+d.limit)))
				}
				dst = append(dst, Frame{Kind: KindToken, Token: body[:nl:nl]})
				d.kept = true
				i += nl + 1
				continue
			}
			if nl == 1 {
				dst = append(dst, Frame{Kind: KindRemoteClose})
				i += 2
				continue
			}
			if bs > d.limit {
				return dst, d.fail(d.tooLarge(base + int64(i+d.limit)))
			}
			// Unescaping never grows the body, and the limit bounds the
			// result. In place, the token is decoded over its own body:
			// each byte is written at or before where it is read. Else the
			// escaped frames of one chunk share one allocation, the arena,
			// each token taking the next bytes of it.
			need := min(nl, d.limit)
			a := -1
			if inPlace {
				tok = body[:bs:need]
				d.kept = true
			} else {
				if cap(arena)-len(arena) < need {
					arena = make([]byte, 0, max(need, len(rest)))
				}
				a = len(arena)
				tok = arena[a : a+bs : a+need]
				copy(tok, body[:bs])
			}
			var err error
			if nl <= shortFrame && nl <= d.limit {
				tok, err = d.unescapeShort(tok, body[bs:], base+int64(i+bs))
			} else {
				tok, err = d.unescape(tok, body[bs:], base+int64(i+bs), false)
			}
			if a >= 0 {
				arena = arena[:a+len(tok)]
			}
			if err != nil {
				return dst, d.fail(err)
			}
		} else {
			// The frame in progress ends inside chunk.
			var err error
			if d.buf, err = d.unescape(d.buf, body, base+int64(i), true); err != nil {
				return dst, d.fail(err)
			}
			if !d.pending {
				// Hand the buffer over rather than copy it out: a copy would
				// allocate as much. The next frame that spans chunks gets a
				// buffer sized like this one.
				tok, d.buf = d.buf, nil
				d.hint = min(len(tok), maxSizeHint, d.limit)
			} else {
				tok = d.buf // only its length matters below
				d.buf = d.buf[:0]
			}
		}
		if d.pending {
			d.pending = false
			if len(tok) != 0 {
				return dst, d.fail(&InvalidEscapeError{Offset: base + int64(i+nl), Byte: frameEnd})
			}
			dst = append(dst, Frame{Kind: KindRemoteClose})
		} else {
			if tok == nil {
				tok = []byte{}
			}
			dst = append(dst, Frame{Kind: KindToken, Token: tok[:len(tok):len(tok)]})
		}
		i += nl + 1
	}
	d.offset += int64(len(chunk))
	return dst, nil
}

// fail records err as the decoder's sticky error, releases the frame in
// progress and returns err.
func (d *Decoder) fail(err error) error {
	d.err = err
	d.buf = nil
	d.pending = false
	return err
}

func (d *Decoder) tooLarge(offset int64) error {
	return &TokenTooLargeError{Limit: d.limit, Offset: offset}
}

// unescape appends the decoded form of src, a piece of a frame body without
// newlines that starts at stream offset off, to out and returns it. It
// completes a backslash left pending by an earlier piece and leaves d.pending
// set when src ends in an unpaired backslash. Clean runs are found with
// bytes.IndexByte and copied in bulk, unless src starts dense (at least one
// escape in denseDecode bytes of its first denseProbe): then it is decoded
// byte by byte.
//
// The frame in progress may never hold more than d.limit bytes, counting a
// pending backslash as one: going over is a [*TokenTooLargeError] at the
// offset of the first input byte of decoded byte d.limit+1. When grow is set
// out is the decoder's own buffer and is grown geometrically with its capacity
// capped at d.limit; otherwise out must already have room for the result.
func (d *Decoder) unescape(out, src []byte, off int64, grow bool) ([]byte, error) {
	i := 0
	if d.pending && len(src) > 0 {
		c, ok := unescapeByte(src[0])
		if !ok {
			return out, &InvalidEscapeError{Offset: off, Byte: src[0]}
		}
		d.pending = false
		// The pending backslash was already counted against the limit.
		if grow {
			out = d.ensure(out, 1)
		}
		out = append(out, c)
		i = 1
	}
	if rest := src[i:]; len(rest) >= denseProbe && len(out)+len(rest) <= d.limit &&
		bytes.Count(rest[:denseProbe], escapeSep)*denseDecode >= denseProbe {
		// Dense: a search per escape would cost more than a byte loop. The
		// limit cannot be passed: unescaping never grows the bytes.
		if grow {
			out = d.ensure(out, len(rest))
		}
		return d.unescapeDense(out, rest, off+int64(i))
	}
	for i < len(src) {
		j := bytes.IndexByte(src[i:], escapeChar)
		run := src[i:]
		if j >= 0 {
			run = run[:j]
		}
		if len(out)+len(run) > d.limit {
			return out, d.tooLarge(off + int64(i+d.limit-len(out)))
		}
		if grow {
			out = d.ensure(out, len(run))
		}
		out = append(out, run...)
		if j < 0 {
			break
		}
		i += j
		if len(out) >= d.limit {
			return out, d.tooLarge(off + int64(i))
		}
		if i+1 == len(src) {
			d.pending = true
			break
		}
		c, ok := unescapeByte(src[i+1])
		if !ok {
			return out, &InvalidEscapeError{Offset: off + int64(i+1), Byte: src[i+1]}
		}
		if grow {
			out = d.ensure(out, 1)
		}
		out = append(out, c)
		i += 2
	}
	return out, nil
}

// shortFrame is the body length up to which a frame with escapes is decoded
// with a plain byte loop: for short bodies the per-call cost of the
// vectorised searches outweighs what they save.
const shortFrame = 32

// denseProbe is how many bytes of a piece of a frame body [Decoder.unescape]
// looks at to tell a dense one, with at least one escape in denseDecode
// bytes, which it decodes with unescapeDense. That loop costs about 1.5 ns
// a byte, a search and a copy about 14 ns an escape: with an escape every
// few bytes the loop is five times faster (BenchmarkDecode/dense), with one
// in 16 the searches are faster (BenchmarkDecode/lines), and the crossing
// is near one in 9. A probe of 64 bytes took a piece of the lines for dense.
const (
	denseProbe  = 256
	denseDecode = 6
)

// unescapeShort is [Decoder.unescape] for a short piece of a frame body that
// starts a frame, with no pending backslash on entry and no limit checks: the
// caller guarantees that the whole body fits the limit, and neither the
// decoded bytes nor a trailing pending backslash can outgrow the body. out must
// have room for the result.
func (d *Decoder) unescapeShort(out, src []byte, off int64) ([]byte, error) {
	for i := 0; i < len(src); i++ {
		c := src[i]
		if c != escapeChar {
			out = append(out, c)
			continue
		}
		if i+1 == len(src) {
			d.pending = true
			break
		}
		e, ok := unescapeByte(src[i+1])
		if !ok {
			return out, &InvalidEscapeError{Offset: off + int64(i+1), Byte: src[i+1]}
		}
		out = append(out, e)
		i++
	}
	return out, nil
}

// unescapeDense is [Decoder.unescape] for a dense piece of a frame body,
// with no pending backslash on entry and no limit checks: the caller
// guarantees that out and src together fit the limit, and neither the
// decoded bytes nor a trailing pending backslash can outgrow src. out must
// have room for the result.
//
// Its loop has no branch on the bytes but the one for an invalid escape,
// never taken on valid input (with escapes every few bytes, a branch on
// them is mispredicted every few bytes): tables give each byte's output and
// whether it starts an escape. In place (src is out's room) each byte is
// written at or before where it is read.
func (d *Decoder) unescapeDense(out, src []byte, off int64) ([]byte, error) {
	n := len(out)
	dst := out[n : n+len(src)] // room for src unescaped, which is no longer
	w, esc := 0, 0
	for i, c := range src {
		if badEscape[esc][c] != 0 {
			return out[:n+w], &InvalidEscapeError{Offset: off + int64(i), Byte: c}
		}
		dst[w] = unescapeTable[esc][c] // written over unless w moves on
		starts := int(startsEscape[c]) &^ esc
		w += 1 - starts
		esc = starts
	}
	d.pending = esc == 1
	return out[:n+w], nil
}

// The tables of unescapeDense, by whether the byte before started an escape
// (1) or not (0): what a byte is written as (a backslash that starts an
// escape is written as itself, then over), whether it ends an invalid
// escape, and whether a byte starts an escape when the one before did not.
var (
	unescapeTable, badEscape [2][256]byte
	startsEscape             [256]byte
)

func init() {
	for c := range 256 {
		unescapeTable[0][c] = byte(c)
		u, ok := unescapeByte(byte(c))
		unescapeTable[1][c] = u
		if !ok {
			badEscape[1][c] = 1
		}
	}
	startsEscape[escapeChar] = 1
}

// unescapeByte returns the byte that the escape pair backslash+c stands for.
func unescapeByte(c byte) (byte, bool) {
	switch c {
	case escapeChar:
		return escapeChar, true
	case 'n':
		return frameEnd, true
	}
	return 0, false
}

// maxSizeHint caps the buffer a decoder sizes in advance for a frame that
// spans chunks, so that one large token does not make every later partial
// frame of the connection cost that much before its bytes arrive.
const maxSizeHint = 1 << 20

// minGrow is the smallest capacity the decoder allocates for a frame in
// progress.
const minGrow = 512

// ensure returns buf with room for n more bytes. len(buf)+n must not exceed
// d.limit; the capacity grows geometrically but never beyond d.limit.
func (d *Decoder) ensure(buf []byte, n int) []byte {
	need := len(buf) + n
	if need <= cap(buf) {
		return buf
	}
	c := max(2*cap(buf), need, minGrow)
	c = min(c, d.limit)
	nb := make([]byte, len(buf), c)
	copy(nb, buf)
	return nb
}
