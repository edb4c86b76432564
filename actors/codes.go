package actors

import (
	"errors"
	"io"

	"github.com/tokenserver/tokenserver/wire"
)

// Codes of ErrorOccurred and TokensDropped, one per kind of cause.
const (
	CodeInvalidEscape  = "invalid_escape"
	CodeTokenTooLarge  = "token_too_large"
	CodeTruncated      = "truncated_frame"
	CodeHandshake      = "handshake"
	CodeSlowConsumer   = "slow_consumer"
	CodeListen         = "listen"
	CodeDial           = "dial"
	CodeConnection     = "connection"
	CodeTooManyConns   = "too_many_connections"
	CodeTooManyPend    = "too_many_pending"
	CodeHandlerPanic   = "handler_panic"
	CodeForcedClose    = "forced_close"
	CodeBufferFull     = "buffer_full"
	CodeGaveUp         = "gave_up"
	CodeClientClosed   = "client_closed"
	CodeNotSent        = "not_sent"
	CodeMaybeSent      = "maybe_sent"
	CodeSessionExpired = "session_expired"
	CodeSessionRefused = "session_refused"
	CodeMemoryBudget   = "memory_budget"
	CodeOther          = "error"
)

// codeOf maps each error to its code, most specific first.
var codeOf = []struct {
	err  error
	code string
}{
	{wire.ErrInvalidEscape, CodeInvalidEscape},
	{wire.ErrTokenTooLarge, CodeTokenTooLarge},
	{io.ErrUnexpectedEOF, CodeTruncated},
	{ErrSlowConsumer, CodeSlowConsumer},
	{ErrHandshake, CodeHandshake},
	{ErrListen, CodeListen},
	{ErrDial, CodeDial},
	{ErrTooManyConnections, CodeTooManyConns},
	{ErrTooManyPending, CodeTooManyPend},
	{ErrHandlerPanic, CodeHandlerPanic},
	{ErrForcedClose, CodeForcedClose},
	{ErrBufferFull, CodeBufferFull},
	{ErrGaveUp, CodeGaveUp},
	{ErrClientClosed, CodeClientClosed},
	{ErrNotSent, CodeNotSent},
	{ErrMaybeSent, CodeMaybeSent},
	{ErrSessionExpired, CodeSessionExpired},
	{ErrSessionRefused, CodeSessionRefused},
	{ErrMemoryBudget, CodeMemoryBudget},
	{ErrConnection, CodeConnection},
}

// ErrorCode returns the ErrorOccurred code for err.
func ErrorCode(err error) string {
	for _, c := range codeOf {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return CodeOther
}
