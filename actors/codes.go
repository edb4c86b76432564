package actors

import (
	"errors"
	"io"

	"github.com/tokenserver/tokenserver/tlsio"
	"github.com/tokenserver/tokenserver/wire"
)

// Codes of ErrorOccurred, one per kind of cause.
const (
	CodeInvalidEscape = "invalid_escape"
	CodeTokenTooLarge = "token_too_large"
	CodeHandshake     = "handshake"
	CodeSlowConsumer  = "slow_consumer"
	CodeQueueFull     = "queue_full"
	CodeListen        = "listen"
	CodeDial          = "dial"
	CodeConnection    = "connection"
	CodeTooManyConns  = "too_many_connections"
	CodeHandlerPanic  = "handler_panic"
	CodeForcedClose   = "forced_close"
	CodeBufferFull    = "buffer_full"
	CodeGaveUp        = "gave_up"
	CodeClientClosed  = "client_closed"
	CodeNotSent       = "not_sent"
	CodeTruncated     = "truncated_frame"
	CodeOther         = "error"
)

// ErrorCode returns the ErrorOccurred code for err.
func ErrorCode(err error) string {
	switch {
	case errors.Is(err, wire.ErrInvalidEscape):
		return CodeInvalidEscape
	case errors.Is(err, wire.ErrTokenTooLarge):
		return CodeTokenTooLarge
	case errors.Is(err, tlsio.ErrWriteTimeout):
		return CodeSlowConsumer
	case errors.Is(err, ErrHandshake):
		return CodeHandshake
	case errors.Is(err, ErrQueueFull):
		return CodeQueueFull
	case errors.Is(err, ErrListen):
		return CodeListen
	case errors.Is(err, ErrDial):
		return CodeDial
	case errors.Is(err, ErrTooManyConnections):
		return CodeTooManyConns
	case errors.Is(err, ErrHandlerPanic):
		return CodeHandlerPanic
	case errors.Is(err, ErrForcedClose):
		return CodeForcedClose
	case errors.Is(err, ErrBufferFull):
		return CodeBufferFull
	case errors.Is(err, ErrGaveUp):
		return CodeGaveUp
	case errors.Is(err, ErrClientClosed):
		return CodeClientClosed
	case errors.Is(err, io.ErrUnexpectedEOF):
		return CodeTruncated
	case errors.Is(err, ErrNotSent):
		return CodeNotSent
	case errors.Is(err, ErrConnection):
		return CodeConnection
	}
	return CodeOther
}
