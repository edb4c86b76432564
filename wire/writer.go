package wire

import "io"

// writerBufferSize is the amount of encoded data a [Writer] collects before it
// writes to the underlying io.Writer on its own.
const writerBufferSize = 64 << 10

// maxRetainedBuffer is the largest buffer a [Writer] keeps between flushes;
// a bigger one, grown for a large token, is released after it is written.
const maxRetainedBuffer = 4 * writerBufferSize

// Writer encodes frames onto an io.Writer.
//
// A Writer buffers: WriteToken and WriteRemoteClose append the encoded frame
// to an internal buffer and only write to the underlying io.Writer once that
// buffer holds 64 KiB or more, so many small tokens go out in one Write call.
// Call [Writer.Flush] to write whatever is buffered, e.g. after the last frame
// of a batch; frames that were never flushed are never sent. A write error is
// sticky: it is returned by that call and every later one, and the buffered
// frames are not retried. A Writer is not safe for concurrent use.
type Writer struct {
	w   io.Writer
	buf []byte
	err error
}

// NewWriter returns a buffering [Writer] that writes frames to w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: w}
}

// WriteToken appends the frame for token to the buffer, writing the buffer to
// the underlying io.Writer if it has grown to 64 KiB or more. It returns the
// Writer's sticky error, if any.
func (w *Writer) WriteToken(token []byte) error {
	if w.err != nil {
		return w.err
	}
	w.buf = AppendToken(w.buf, token)
	if len(w.buf) >= writerBufferSize {
		return w.Flush()
	}
	return nil
}

// WriteRemoteClose appends the remoteClose control frame to the buffer,
// writing the buffer to the underlying io.Writer if it has grown to 64 KiB or
// more. Call [Writer.Flush] to make sure it is sent.
func (w *Writer) WriteRemoteClose() error {
	if w.err != nil {
		return w.err
	}
	w.buf = AppendRemoteClose(w.buf)
	if len(w.buf) >= writerBufferSize {
		return w.Flush()
	}
	return nil
}

// Flush writes all buffered frames to the underlying io.Writer in one Write
// call. A short write without an error is reported as io.ErrShortWrite. Any
// error is sticky.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	if len(w.buf) == 0 {
		return nil
	}
	n, err := w.w.Write(w.buf)
	if err == nil && n < len(w.buf) {
		err = io.ErrShortWrite
	}
	if err != nil {
		w.err = err
		w.buf = nil
		return err
	}
	if cap(w.buf) > maxRetainedBuffer {
		w.buf = nil
	} else {
		w.buf = w.buf[:0]
	}
	return nil
}
