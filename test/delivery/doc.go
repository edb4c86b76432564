// Package delivery tests what token/2 promises (wire/TOKEN2.md, section 8)
// end to end, over real mutual TLS on loopback, with processes where the
// promise is about processes: through a proxy that resets both sockets of
// a connection mid-stream, every token reaches the other side's handler
// exactly once and in order, both ways; a server process killed and started
// again gets every token at least once, the repeats flagged; a session
// cannot be taken over with another certificate.
package delivery
