// Package reconnectbuf is the reconnect buffer of a client of package
// actors (ReconnectOptions.BufferSize): the tokens Send took while the
// client could not send them, kept in order until it is connected again.
package reconnectbuf

// Buffer keeps, in order, the tokens a client with reconnection took
// while it could not send them, to be sent once connected again. It belongs
// to the client actor; the zero value is empty.
//
// Order: a connection that ends hands back, in one connDown and in order, the
// frames it took and never wrote. They are older than anything in the buffer
// (the buffer only holds tokens that could not go to that connection, or
// that were not flushed into it yet), so they go in front, as one run.
// Connections follow each other (the next one is dialed after the previous
// one is down), so no older run can come back later.
type Buffer struct {
	tokens [][]byte
	bytes  int64
}

// Push adds the newest token.
func (b *Buffer) Push(tok []byte) {
	b.tokens = append(b.tokens, tok)
	b.bytes += int64(len(tok))
}

// GiveBack puts the tokens a connection returned in front, in their order.
func (b *Buffer) GiveBack(toks [][]byte) {
	if len(toks) == 0 {
		return
	}
	for _, t := range toks {
		b.bytes += int64(len(t))
	}
	b.tokens = append(toks, b.tokens...)
}

// Flush sends the tokens in order while send takes them, and returns how many
// bytes left the buffer and whether it is empty.
func (b *Buffer) Flush(send func([]byte) bool) (sent int64, empty bool) {
	i := 0
	for ; i < len(b.tokens); i++ {
		if !send(b.tokens[i]) {
			break
		}
		sent += int64(len(b.tokens[i]))
		b.tokens[i] = nil
	}
	b.tokens = b.tokens[i:]
	b.bytes -= sent
	if len(b.tokens) == 0 {
		b.tokens = nil
		return sent, true
	}
	return sent, false
}

// TakeAll empties the buffer and returns its tokens and their size.
func (b *Buffer) TakeAll() ([][]byte, int64) {
	toks, n := b.tokens, b.bytes
	b.tokens, b.bytes = nil, 0
	return toks, n
}
