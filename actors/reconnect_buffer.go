package actors

// reconnectBuffer keeps, in order, the tokens a client with reconnection took
// while it could not send them, to be sent once connected again. It belongs
// to the client actor.
//
// Order: a connection that ends hands back, in one connDown and in order, the
// frames it took and never wrote. They are older than anything in the buffer
// (the buffer only holds tokens that could not go to that connection, or
// that were not flushed into it yet), so they go in front, as one run.
// Connections follow each other (the next one is dialed after the previous
// one is down), so no older run can come back later.
type reconnectBuffer struct {
	tokens [][]byte
	bytes  int64
}

// push adds the newest token.
func (b *reconnectBuffer) push(tok []byte) {
	b.tokens = append(b.tokens, tok)
	b.bytes += int64(len(tok))
}

// giveBack puts the tokens a connection returned in front, in their order.
func (b *reconnectBuffer) giveBack(toks [][]byte) {
	if len(toks) == 0 {
		return
	}
	for _, t := range toks {
		b.bytes += int64(len(t))
	}
	b.tokens = append(toks, b.tokens...)
}

// flush sends the tokens in order while send takes them, and returns how many
// bytes left the buffer and whether it is empty.
func (b *reconnectBuffer) flush(send func([]byte) bool) (sent int64, empty bool) {
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

// takeAll empties the buffer and returns its tokens and their size.
func (b *reconnectBuffer) takeAll() ([][]byte, int64) {
	toks, n := b.tokens, b.bytes
	b.tokens, b.bytes = nil, 0
	return toks, n
}
