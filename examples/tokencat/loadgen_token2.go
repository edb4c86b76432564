package main

import (
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/tokenserver/tokenserver/wire"
)

// The token/2 side of the load generator (wire/TOKEN2.md). A connection that
// negotiated token/2 opens a new session (HELLO, WELCOME), sends its tokens
// as DATA frames and acknowledges the replies it verified: every write
// carries an ACK of the replies verified since the last one, as the actors
// runtime adds one to any write it makes, so that what the server holds
// unacknowledged stays within the window. At the end it ends the session
// cleanly: the last ACK and END, then it reads the server's END and its ACK
// of every token until the server closes its side.

// protocolOf is the wire protocol a TLS connection speaks: the one ALPN
// selected, or token/1 when none was.
func protocolOf(st tls.ConnectionState) string {
	if st.NegotiatedProtocol == "" {
		return wire.ProtocolToken1
	}
	return st.NegotiatedProtocol
}

// offered is the ALPN list of a load generator restricted to protocols
// (nil: both, token/2 first).
func offered(protocols []string) []string {
	if len(protocols) == 0 {
		return []string{wire.ProtocolToken2, wire.ProtocolToken1}
	}
	return protocols
}

// checkProtocol refuses a connection that speaks a protocol the load
// generator was not told to speak (a server without ALPN, asked for token/2).
func checkProtocol(id int, got string, protocols []string) error {
	if slices.Contains(offered(protocols), got) {
		return nil
	}
	return fmt.Errorf("connection %d: the server speaks %s, not %s (it selected no protocol by ALPN)",
		id, got, offered(protocols)[0])
}

// greet opens a new token/2 session on c: HELLO, then the server's WELCOME,
// which must be a new session with nothing received.
func (c *benchConn) greet() error {
	h := wire.Hello{First: 1}
	if _, err := rand.Read(h.Session[:]); err != nil {
		return err
	}
	_ = c.conn.SetDeadline(time.Now().Add(c.b.cfg.timeout))
	defer c.conn.SetDeadline(time.Time{})
	if _, err := c.conn.Write(wire.AppendHello(nil, h)); err != nil {
		return fmt.Errorf("connection %d: token/2 HELLO: %w", c.id, err)
	}
	w, err := wire.ReadWelcome(c.conn)
	if err != nil {
		return fmt.Errorf("connection %d: token/2 WELCOME: %w", c.id, err)
	}
	if w.Status != wire.SessionNew || w.Recv != 0 {
		return fmt.Errorf("connection %d: token/2 WELCOME to a new session: %v with %d received, want new with 0",
			c.id, w.Status, w.Recv)
	}
	return nil
}

// appendAck appends to buf the ACK of the replies verified since the last
// ACK written, if any (token/2 only). The caller writes buf.
func (c *benchConn) appendAck(buf []byte) []byte {
	if !c.t2 {
		return buf
	}
	if a := c.acked.Load(); a > c.ackSent {
		buf = wire.AppendAck(buf, uint64(a))
		c.ackSent = a
	}
	return buf
}

// replies takes token/2's ACKs out of frames and checks them: never
// backwards, never beyond the tokens written. What is left, in order, is
// for check: the replies, and a CLOSE or END where a reply was due.
func (c *benchConn) replies(frames []wire.Frame) ([]wire.Frame, error) {
	if !c.t2 {
		return frames, nil
	}
	out := frames[:0]
	for _, f := range frames {
		if f.Kind != wire.KindAck {
			out = append(out, f)
			continue
		}
		if err := c.takeAck(f.Value); err != nil {
			return out, err
		}
	}
	return out, nil
}

// takeAck checks and records the server's acknowledgement of n tokens.
func (c *benchConn) takeAck(n uint64) error {
	if sent := uint64(c.sent.Load()); n < c.peerAck || n > sent {
		return fmt.Errorf("the server acknowledged %d tokens after %d, with %d written", n, c.peerAck, sent)
	}
	c.peerAck = n
	return nil
}

// errNoEnd: the server closed a token/2 connection without END.
var errNoEnd = errors.New("the server closed its side without END")

// end ends a token/2 session cleanly once every reply is verified
// (TOKEN2.md, section 7): the ACK of every reply and END; once the server's
// END came and it acknowledged every token, close_notify; then it reads
// until the server closes its side. It takes at most the run's reply
// timeout.
func (c *benchConn) end() error {
	fail := func(err error) error { return fmt.Errorf("connection %d: token/2 end: %w", c.id, err) }
	_ = c.conn.SetDeadline(time.Now().Add(c.b.cfg.timeout))
	if _, err := c.conn.Write(wire.AppendEnd(c.appendAck(nil))); err != nil {
		return fail(err)
	}
	sent := uint64(c.sent.Load())
	rbuf := make([]byte, 4<<10)
	var frames []wire.Frame
	ended, closed := false, false
	for {
		n, err := c.conn.Read(rbuf)
		if n > 0 {
			var derr error
			frames, derr = c.dec.AppendFrames(frames[:0], rbuf[:n])
			if frames, derr = c.repliesThen(frames, derr); derr != nil {
				return fail(derr)
			}
			for _, f := range frames {
				switch f.Kind {
				case wire.KindEnd:
					ended = true
				case wire.KindToken:
					return fail(fmt.Errorf("a reply to no token (after %d replies)", c.acked.Load()))
				} // a CLOSE asks us to close: we are closing
			}
		}
		if !closed && ended && c.peerAck == sent {
			if cerr := c.conn.CloseWrite(); cerr != nil {
				return fail(cerr)
			}
			closed = true
		}
		switch {
		case errors.Is(err, io.EOF) && closed:
			return nil
		case errors.Is(err, io.EOF) && !ended:
			return fail(errNoEnd)
		case errors.Is(err, io.EOF):
			return fail(fmt.Errorf("the server acknowledged %d of the %d tokens it echoed", c.peerAck, sent))
		case err != nil:
			return fail(err)
		}
	}
}

// repliesThen is replies for frames decoded with derr: a decoding error
// comes after the frames decoded before it.
func (c *benchConn) repliesThen(frames []wire.Frame, derr error) ([]wire.Frame, error) {
	frames, err := c.replies(frames)
	if err != nil {
		return frames, err
	}
	return frames, derr
}
