package wire

import (
	"errors"
	"fmt"
)

// ErrBadFrame is the sentinel for a token/2 frame that breaks the
// specification: an unknown type, a malformed length or payload, a control
// frame over [MaxControlPayload], or a frame where it may not be. Decoders
// report it as a [*FrameError]; match it with errors.Is. A DATA frame over
// the token size limit is a [*TokenTooLargeError] instead.
var ErrBadFrame = errors.New("wire: bad token/2 frame")

// ErrRefused is the sentinel for a token/2 server that answered HELLO with
// CLOSE instead of WELCOME: it refused the connection, and says why.
// [ReadWelcome] reports it as a [*RefusedError]; match it with errors.Is.
var ErrRefused = errors.New("wire: token/2 connection refused")

// RefusedError is the reason a token/2 server gave for refusing a
// connection. errors.Is(err, ErrRefused) is true for it.
type RefusedError struct {
	// Reason is the server's reason, as it wrote it.
	Reason string
}

// Error returns a readable description, e.g.
// `wire: token/2 connection refused: session belongs to another client`.
func (e *RefusedError) Error() string { return ErrRefused.Error() + ": " + e.Reason }

// Is reports whether target is [ErrRefused].
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// FrameError reports a token/2 frame that breaks the specification.
// errors.Is(err, ErrBadFrame) is true for it.
type FrameError struct {
	// Offset is the stream offset (bytes fed to the decoder since it was
	// made, counting from zero, or read by ReadHello and ReadWelcome) of the
	// frame's first byte.
	Offset int64
	// Type is the frame's type byte.
	Type FrameType
	// Reason says what is wrong, e.g. "unknown frame type".
	Reason string
}

// Error returns a readable description, e.g.
// `wire: bad token/2 frame: ACK at offset 12: uvarint not minimal`.
func (e *FrameError) Error() string {
	return fmt.Sprintf("%v: %v at offset %d: %s", ErrBadFrame, e.Type, e.Offset, e.Reason)
}

// Is reports whether target is [ErrBadFrame].
func (e *FrameError) Is(target error) bool { return target == ErrBadFrame }
