package wire

import (
	"errors"
	"fmt"
)

// ErrInvalidEscape is the sentinel for a frame body that contains a backslash
// followed by something other than a backslash or "n". Decoders report it as
// an [*InvalidEscapeError]; match it with errors.Is.
var ErrInvalidEscape = errors.New("wire: invalid escape")

// ErrTokenTooLarge is the sentinel for a frame whose decoded token exceeds the
// decoder's maximum token size. Decoders report it as a [*TokenTooLargeError];
// match it with errors.Is.
var ErrTokenTooLarge = errors.New("wire: token too large")

// ErrInvalidLimit is returned (as is, unwrapped) by [NewDecoder] when the
// maximum token size is zero or negative.
var ErrInvalidLimit = errors.New("wire: invalid max token size")

// InvalidEscapeError reports a backslash inside a frame body that is not
// followed by a backslash or "n". errors.Is(err, ErrInvalidEscape) is true for
// it.
type InvalidEscapeError struct {
	// Offset is the stream offset (bytes fed to the decoder since it was
	// made, counting from zero) of the offending byte that follows the
	// backslash. For a lone backslash before the terminating newline it is
	// the offset of that newline.
	Offset int64
	// Byte is the offending byte that follows the backslash.
	Byte byte
}

// Error returns a readable description, e.g.
// `wire: invalid escape \x78 at offset 5`.
func (e *InvalidEscapeError) Error() string {
	return fmt.Sprintf("wire: invalid escape \\x%02x at offset %d", e.Byte, e.Offset)
}

// Is reports whether target is [ErrInvalidEscape].
func (e *InvalidEscapeError) Is(target error) bool { return target == ErrInvalidEscape }

// TokenTooLargeError reports a frame whose decoded token exceeds the decoder's
// maximum token size. errors.Is(err, ErrTokenTooLarge) is true for it.
type TokenTooLargeError struct {
	// Limit is the decoder's maximum decoded token size in bytes.
	Limit int
	// Offset is the stream offset (bytes fed to the decoder since it was
	// made, counting from zero) of the input byte at which the frame in
	// progress went over the limit: the byte that would start decoded byte
	// number Limit+1 (a plain byte, or the backslash of an escape pair).
	Offset int64
}

// Error returns a readable description of the limit and where it was hit.
func (e *TokenTooLargeError) Error() string {
	return fmt.Sprintf("wire: token too large: over the %d-byte limit at offset %d", e.Limit, e.Offset)
}

// Is reports whether target is [ErrTokenTooLarge].
func (e *TokenTooLargeError) Is(target error) bool { return target == ErrTokenTooLarge }
