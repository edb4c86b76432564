package wire

import (
	"errors"
	"io"
	"strconv"
	"unicode/utf8"
)

// ReadHello reads the first frame of a token/2 connection from r, on the
// server: it must be a HELLO (TOKEN2.md, section 5). It reads exactly that
// frame's bytes and no more, so that r (a *tls.Conn) can be handed to a
// [Token2Decoder]'s reader afterwards. Another frame, or a malformed HELLO,
// is a [*FrameError]; a stream that ends first is io.EOF (nothing read) or
// io.ErrUnexpectedEOF; other read errors are returned as they are.
func ReadHello(r io.Reader) (Hello, error) {
	_, payload, err := readFirstFrame(r, TypeHello)
	if err != nil {
		return Hello{}, err
	}
	var h Hello
	bad := func(reason string) (Hello, error) {
		return Hello{}, &FrameError{Type: TypeHello, Reason: reason}
	}
	if len(payload) < len(h.Session) {
		return bad("payload shorter than a session id")
	}
	copy(h.Session[:], payload)
	rest := payload[len(h.Session):]
	for _, v := range []*uint64{&h.Recv, &h.First, &h.Last} {
		n, k, why := readUvarint(rest)
		if why != "" {
			return bad(why)
		}
		if k == 0 {
			return bad("payload ends inside a number")
		}
		*v, rest = n, rest[k:]
	}
	switch {
	case len(rest) != 0:
		return bad("bytes after the last number")
	case h.First == 0:
		return bad("first is 0")
	case h.First-1 > h.Last:
		// Every frame before first was written (and acknowledged).
		return bad("first is beyond last+1")
	}
	return h, nil
}

// ReadWelcome reads the first frame of a token/2 connection from r, on the
// client: it must be a WELCOME. Like [ReadHello], it reads exactly that
// frame. A CLOSE instead is the server's refusal: a [*RefusedError] with its
// reason.
func ReadWelcome(r io.Reader) (Welcome, error) {
	t, payload, err := readFirstFrame(r, TypeWelcome, TypeClose)
	if err != nil {
		return Welcome{}, err
	}
	if t == TypeClose {
		if !utf8.Valid(payload) {
			return Welcome{}, &FrameError{Type: t, Reason: "reason is not valid UTF-8"}
		}
		return Welcome{}, &RefusedError{Reason: string(payload)}
	}
	bad := func(reason string) (Welcome, error) {
		return Welcome{}, &FrameError{Type: TypeWelcome, Reason: reason}
	}
	if len(payload) < 2 {
		return bad("payload shorter than a status and a number")
	}
	w := Welcome{Status: SessionStatus(payload[0])}
	if w.Status != SessionNew && w.Status != SessionResumed {
		return bad("unknown status " + itoa(int(w.Status)))
	}
	n, k, why := readUvarint(payload[1:])
	switch {
	case why != "":
		return bad(why)
	case k == 0:
		return bad("payload ends inside a number")
	case 1+k != len(payload):
		return bad("bytes after the number")
	}
	w.Recv = n
	return w, nil
}

// readFirstFrame reads one control frame of type want (or, if given, of
// type alt) from r, byte by byte for its header and in one read for its
// payload.
func readFirstFrame(r io.Reader, want FrameType, alt ...FrameType) (FrameType, []byte, error) {
	var hdr [1 + maxUvarintLen]byte
	if _, err := io.ReadFull(r, hdr[:1]); err != nil {
		return 0, nil, err // io.EOF when the stream ends at once
	}
	t := FrameType(hdr[0])
	if t != want && (len(alt) == 0 || t != alt[0]) {
		return 0, nil, &FrameError{Type: t, Reason: "the first frame must be " + want.String()}
	}
	var size uint64
	for n := 1; ; n++ {
		if _, err := io.ReadFull(r, hdr[n:n+1]); err != nil {
			return 0, nil, unexpected(err)
		}
		v, k, why := readUvarint(hdr[1 : n+1])
		if why != "" {
			return 0, nil, &FrameError{Type: t, Reason: "length: " + why}
		}
		if k > 0 {
			size = v
			break
		}
	}
	if size > MaxControlPayload {
		return 0, nil, &FrameError{Type: t, Reason: "control frame of " + strconv.FormatUint(size, 10) + " bytes, over 1024"}
	}
	payload := make([]byte, size)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, unexpected(err)
	}
	return t, payload, nil
}

// unexpected turns the end of the stream inside a frame into
// io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
