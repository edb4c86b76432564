package wire

import "bytes"

// DefaultMaxTokenSize is the default maximum decoded token size, 16 MiB.
const DefaultMaxTokenSize = 16 << 20

const (
	escapeChar = '\\' // 0x5C, starts an escape pair
	frameEnd   = '\n' // 0x0A, terminates a frame
)

var (
	escapeSep = []byte{escapeChar}
	endSep    = []byte{frameEnd}
)

// escapeTable maps a byte to the second byte of its escape pair, or 0 when
// the byte is copied as is.
var escapeTable = [256]byte{escapeChar: escapeChar, frameEnd: 'n'}

// denseRatio selects the table-driven encoder when at least one byte in
// denseRatio needs escaping; below that, runs between specials are long
// enough for vectorised searches and bulk copies to win.
const denseRatio = 16

// shortToken is the token length up to which AppendToken escapes in one
// table-driven pass, without counting the special bytes first, when dst has
// room for the worst case: for short tokens the two counts cost as much as
// the pass itself.
const shortToken = 32

// EncodedLen returns the exact length of the frame that [AppendToken] appends
// for token: the escaped body plus the terminating newline.
func EncodedLen(token []byte) int {
	return len(token) + bytes.Count(token, escapeSep) + bytes.Count(token, endSep) + 1
}

// AppendToken appends the token/1 frame for token (its escaped body followed
// by a newline) to dst and returns the extended slice. It grows dst at most
// once. A token without backslashes or newlines is appended in one bulk copy.
func AppendToken(dst, token []byte) []byte {
	if len(token) <= shortToken && cap(dst)-len(dst) > 2*len(token) {
		// One pass: room for every byte escaped is there already.
		n := len(dst)
		out := dst[n : n+2*len(token)+1]
		w := escapeShort(out, token)
		out[w] = frameEnd
		return dst[:n+w+1]
	}
	nb := bytes.Count(token, escapeSep)
	nn := bytes.Count(token, endSep)
	if nb+nn == 0 {
		dst = grow(dst, len(token)+1)
		dst = append(dst, token...)
		return append(dst, frameEnd)
	}
	total := len(token) + nb + nn + 1
	n := len(dst)
	dst = grow(dst, total)
	out := dst[n : n+total]
	var w int
	if (nb+nn)*denseRatio >= len(token) {
		w = escapeDense(out, token)
	} else {
		w = escapeSparse(out, token, nb, nn)
	}
	out[w] = frameEnd
	return dst[:n+total]
}

// AppendTokenPiece appends one piece of the token/1 frame of a token to dst
// and returns the extended slice: the escaped bytes of part, then the
// frame's end if last. Escaping works byte by byte, so the pieces of a
// token's consecutive parts, in order and the last one with last set, are
// the bytes [AppendToken] gives for the whole token, however it is cut. It
// lets a large token be escaped a piece at a time, each written while the
// next is escaped. A piece that is not the last holds no newline, so it is
// never a whole frame.
func AppendTokenPiece(dst, part []byte, last bool) []byte {
	dst = AppendToken(dst, part)
	if !last {
		dst = dst[:len(dst)-1]
	}
	return dst
}

// AppendRemoteClose appends the remoteClose control frame (0x5C 0x0A) to dst
// and returns the extended slice.
func AppendRemoteClose(dst []byte) []byte {
	return append(dst, escapeChar, frameEnd)
}

// escapeSparse writes the escaped token into out, which must be large enough,
// and returns the number of bytes written. nb and nn are the numbers of
// backslashes and newlines in token. It finds each special byte with
// bytes.IndexByte and copies the clean runs between them in bulk; each input
// byte is searched at most once per special kind.
func escapeSparse(out, token []byte, nb, nn int) int {
	pb, pn := -1, -1
	if nb > 0 {
		pb = bytes.IndexByte(token, escapeChar)
	}
	if nn > 0 {
		pn = bytes.IndexByte(token, frameEnd)
	}
	i, w := 0, 0
	for pb >= 0 || pn >= 0 {
		if pn < 0 || (pb >= 0 && pb < pn) {
			w += copy(out[w:], token[i:pb])
			out[w], out[w+1] = escapeChar, escapeChar
			w += 2
			i = pb + 1
			if nb--; nb > 0 {
				pb = i + bytes.IndexByte(token[i:], escapeChar)
			} else {
				pb = -1
			}
		} else {
			w += copy(out[w:], token[i:pn])
			out[w], out[w+1] = escapeChar, 'n'
			w += 2
			i = pn + 1
			if nn--; nn > 0 {
				pn = i + bytes.IndexByte(token[i:], frameEnd)
			} else {
				pn = -1
			}
		}
	}
	w += copy(out[w:], token[i:])
	return w
}

// escapeDense writes the escaped token into out, which must have room for
// it and one byte more (the frame's end, which it may write over), and
// returns the number of bytes written. It is a table-driven byte loop for
// tokens where special bytes are too frequent for searching to pay off. It
// is not inlined: inlined in AppendToken, it made the sparse path a third
// slower (BenchmarkEncode/binary).
//
//go:noinline
func escapeDense(out, token []byte) int {
	w := 0
	for _, c := range token {
		out[w], out[w+1] = escapeFirst[c], escapeTable[c] // the second written over unless escaped
		w += int(escapeWidth[c])
	}
	return w
}

// escapeShort is escapeDense for a short token, with a branch per byte:
// for a few bytes it costs less than the call escapeDense is.
func escapeShort(out, token []byte) int {
	w := 0
	for _, c := range token {
		if e := escapeTable[c]; e != 0 {
			out[w], out[w+1] = escapeChar, e
			w += 2
		} else {
			out[w] = c
			w++
		}
	}
	return w
}

// escapeFirst is the first byte of a byte's escaped form (the byte itself,
// or the backslash of its escape pair), and escapeWidth how many bytes that
// form takes: tables, so that escapeDense has no branch on the bytes (with
// specials every few bytes, a branch on them is mispredicted every few
// bytes).
var escapeFirst, escapeWidth [256]byte

func init() {
	for c := range 256 {
		escapeFirst[c], escapeWidth[c] = byte(c), 1
		if escapeTable[c] != 0 {
			escapeFirst[c], escapeWidth[c] = escapeChar, 2
		}
	}
}

// grow returns dst with room for n more bytes, allocating at most once. Like
// append, it at least doubles the capacity so that repeated appends to one
// buffer stay amortised linear.
func grow(dst []byte, n int) []byte {
	if cap(dst)-len(dst) >= n {
		return dst
	}
	nd := make([]byte, len(dst), max(len(dst)+n, 2*cap(dst)))
	copy(nd, dst)
	return nd
}
