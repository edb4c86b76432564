// Package wire encodes and decodes the frames of tokenserver's two wire
// protocols, pure Go with no I/O of its own and no actors: token/1, the
// framing of npm token-server 1.0.10, and token/2, typed length-prefixed
// frames with acknowledgements and resumable sessions between
// tokenserver-go peers, chosen by ALPN. Package actors runs them on TLS
// connections; use wire directly to read or write token/1 on a stream of
// your own:
//
//	stream := wire.AppendToken(nil, []byte("two\nlines")) // escaped, then "\n"
//	stream = wire.AppendRemoteClose(stream)               // the control frame
//
//	dec, err := wire.NewDecoder(wire.DefaultMaxTokenSize)
//	...
//	frames, err := dec.AppendFrames(nil, chunk) // chunks split anywhere
//	for _, f := range frames {
//		// f.Kind: KindToken (f.Token) or KindRemoteClose
//	}
//
// A [Writer] buffers frames onto an io.Writer. Bad input is a typed error
// ([ErrInvalidEscape], [ErrTokenTooLarge]; errors.Is and errors.As). The
// runtime uses either protocol as a [Codec] ([Token1], [Token2], [CodecFor]:
// see Codecs below). TOKEN2.md in this directory is token/2's
// specification; [Token2Decoder], [AppendData], [AppendAck], [AppendClose],
// [ReadHello], [ReadWelcome] and their kin implement it.
//
// # token/1
//
// A token is any byte string, the empty one included. On the wire a token is
// its escaped body followed by one newline (0x0A). Escaping turns a backslash
// (0x5C) into two backslashes and a newline into a backslash followed by "n";
// every other byte is copied. The frame whose body is exactly one backslash
// ("\\\n") is the remoteClose control frame: the server is going away and asks
// the client to close its side.
//
// token/1 has an append-style encoder ([AppendToken]), a [Writer] helper
// over an io.Writer, and a streaming [Decoder] that is fed chunks split
// anywhere and yields frames in order. The decoder enforces a maximum decoded token size so that a peer that
// never sends a newline cannot make it buffer without bound, and reports
// protocol errors as typed values that can be matched with errors.Is and
// errors.As.
//
// The decoder's limit counts decoded bytes: a token of exactly the maximum
// size is accepted, and a frame in progress fails with [ErrTokenTooLarge] as
// soon as its decoded bytes, plus one for a backslash still waiting for its
// partner, exceed the maximum, without waiting for the newline. Protocol
// errors are final for a decoder; there is no resynchronisation.
//
// Decoding is zero-copy where it can be: a token frame that lies wholly inside
// one chunk and contains no escapes is returned as a sub-slice of that chunk,
// so a steady stream of such frames decodes without allocating.
//
// # Codecs
//
// A [Codec] is a wire protocol as the runtime (package actors) uses it:
// encoding tokens and control frames, a [FrameDecoder] per inbound stream,
// and where whole frames end in a written prefix. [Token1] is token/1's;
// [CodecFor] picks a connection's codec from the protocol ALPN negotiated.
package wire
