package main

import (
	"bufio"
	"encoding/binary"

	"github.com/tokenserver/tokenserver/wire"
)

// The baseline's token/2 loop: the least a server can do and still speak
// token/2 (wire/TOKEN2.md) to tokenserver's clients, as the token/1 loop is
// the least for token/1. It keeps no session and checks nothing beyond
// finding where frames end, as the token/1 loop trusts its newlines.

// Acknowledgement batching of the loop, as the actors runtime's (TOKEN2.md,
// section 6): an ACK goes with every write, and is added to the output after
// this many frames or bytes when the input does not let up.
const (
	loopAckEveryFrames = 256
	loopAckEveryBytes  = 256 << 10
)

// echoToken2 runs token/2 on a connection whose TLS handshake chose it: it
// answers HELLO with a WELCOME to a new session (the client then numbers its
// frames from HELLO's First), echoes every DATA frame as it came, header and
// payload, acknowledges the frames it echoed, drops the client's CLOSE, and
// answers END with END; once the client has acknowledged every frame echoed
// after that, it closes its side with closeWrite (TLS close_notify). It
// returns at the end of the stream or on the first error, having flushed
// what it could.
func echoToken2(r *bufio.Reader, w *bufio.Writer, closeWrite func() error) error {
	hello, err := wire.ReadHello(r)
	if err != nil {
		return err
	}
	recv := hello.First - 1  // the number of the last DATA frame read
	acked := recv            // ... and of the last one acknowledged
	var sent, peerAck uint64 // DATA frames echoed, and the client's ACK of them
	ended, closed := false, false
	if _, err := w.Write(wire.AppendWelcome(nil, wire.Welcome{Status: wire.SessionNew, Recv: recv})); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	var hdr []byte
	ackBytes := 0 // payload bytes echoed since the last ACK
	ack := func() {
		if recv > acked {
			hdr = wire.AppendAck(hdr[:0], recv)
			_, _ = w.Write(hdr) // a failed write is sticky: the next Flush says it
			acked, ackBytes = recv, 0
		}
	}
	for {
		t, err := r.ReadByte()
		if err != nil {
			if !closed {
				ack()
				_ = w.Flush()
			}
			return err
		}
		n, err := binary.ReadUvarint(r)
		if err != nil {
			return err
		}
		switch wire.FrameType(t) {
		case wire.TypeData:
			hdr = binary.AppendUvarint(append(hdr[:0], t), n)
			if _, err := w.Write(hdr); err != nil {
				return err
			}
			if err := copyFrame(w, r, n); err != nil {
				return err
			}
			recv++
			sent++
			if ackBytes += int(n); recv-acked >= loopAckEveryFrames || ackBytes >= loopAckEveryBytes {
				ack()
			}
		case wire.TypeEnd:
			ack()
			if _, err := w.Write(wire.AppendEnd(hdr[:0])); err != nil {
				return err
			}
			ended = true
		case wire.TypeAck:
			if peerAck, err = binary.ReadUvarint(r); err != nil {
				return err
			}
		default: // CLOSE: nothing to do
			if _, err := r.Discard(int(n)); err != nil {
				return err
			}
		}
		if closed {
			continue // the client's last ACK, then the end of its stream
		}
		if r.Buffered() == 0 || ended {
			ack()
			if err := w.Flush(); err != nil {
				return err
			}
		}
		if ended && peerAck == sent {
			if err := closeWrite(); err != nil {
				return err
			}
			closed = true
		}
	}
}

// copyFrame copies the next n bytes of r to w, through r's buffer: the
// payload of a frame, however large, streams through without being held
// whole.
func copyFrame(w *bufio.Writer, r *bufio.Reader, n uint64) error {
	for n > 0 {
		if r.Buffered() == 0 {
			if _, err := r.Peek(1); err != nil { // one read into the buffer
				return err
			}
		}
		k := int(min(n, uint64(r.Buffered())))
		b, _ := r.Peek(k)
		if _, err := w.Write(b); err != nil {
			return err
		}
		_, _ = r.Discard(k)
		n -= uint64(k)
	}
	return nil
}
