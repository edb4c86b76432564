package wire

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

// countingWriter records every Write call.
type countingWriter struct {
	bytes.Buffer
	calls int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.calls++
	return w.Buffer.Write(p)
}

func TestWriterBuffersUntilFlush(t *testing.T) {
	var out countingWriter
	w := NewWriter(&out)
	check.NoError(t, w.WriteToken([]byte("one")))
	check.NoError(t, w.WriteToken([]byte("t\\w\no")))
	check.NoError(t, w.WriteToken(nil))
	check.NoError(t, w.WriteRemoteClose())
	check.Zero(t, out.calls, "wrote before Flush")
	check.NoError(t, w.Flush())
	check.Equal(t, 1, out.calls)
	want := AppendToken(nil, []byte("one"))
	want = AppendToken(want, []byte("t\\w\no"))
	want = AppendToken(want, nil)
	want = AppendRemoteClose(want)
	check.Equal(t, want, out.Bytes())

	// Flushing an empty buffer writes nothing.
	check.NoError(t, w.Flush())
	check.Equal(t, 1, out.calls)
}

func TestWriterFlushesWhenFull(t *testing.T) {
	var out countingWriter
	w := NewWriter(&out)
	r := rand.New(rand.NewPCG(13, 14))
	var want []byte
	for range 2000 {
		tok := randomToken(r, 300)
		want = AppendToken(want, tok)
		check.NoError(t, w.WriteToken(tok))
	}
	check.True(t, out.calls > 0, "never flushed on its own")
	check.LessOrEqual(t, out.calls, len(want)/writerBufferSize+1)
	check.NoError(t, w.Flush())
	check.Equal(t, want, out.Bytes())

	// A large token goes out, and its big buffer is not kept.
	big := bytes.Repeat([]byte("\n"), 1<<20)
	check.NoError(t, w.WriteToken(big))
	check.Zero(t, len(w.buf))
	check.LessOrEqual(t, cap(w.buf), maxRetainedBuffer)
	check.Equal(t, append(want, AppendToken(nil, big)...), out.Bytes())
}

type failingWriter struct{ err error }

func (w failingWriter) Write(p []byte) (int, error) { return 0, w.err }

type shortWriter struct{}

func (shortWriter) Write(p []byte) (int, error) { return len(p) / 2, nil }

func TestWriterStickyError(t *testing.T) {
	boom := errors.New("boom")
	w := NewWriter(failingWriter{boom})
	check.NoError(t, w.WriteToken([]byte("x")))
	check.True(t, w.Flush() == boom)
	check.True(t, w.WriteToken([]byte("y")) == boom)
	check.True(t, w.WriteRemoteClose() == boom)
	check.True(t, w.Flush() == boom)

	w = NewWriter(shortWriter{})
	check.NoError(t, w.WriteRemoteClose())
	check.True(t, w.Flush() == io.ErrShortWrite)
	check.True(t, w.WriteToken(nil) == io.ErrShortWrite)

	// An error from an automatic flush is returned by the write call.
	w = NewWriter(failingWriter{boom})
	check.True(t, w.WriteToken(make([]byte, writerBufferSize)) == boom)
}

func TestWriterOutputDecodes(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	toks := randomTokens(r, 500, 500)
	var out bytes.Buffer
	w := NewWriter(&out)
	for _, tok := range toks {
		if tok == nil {
			check.NoError(t, w.WriteRemoteClose())
		} else {
			check.NoError(t, w.WriteToken(tok))
		}
	}
	check.NoError(t, w.Flush())
	frames, err := decodeChunks(t, out.Bytes(), DefaultMaxTokenSize, randomCuts(r, out.Len()))
	check.NoError(t, err)
	requireFramesEqual(t, framesFor(toks), frames)
}

// The buffer goes out as soon as it holds 64 KiB: a frame that brings it to
// exactly that is written at once, by WriteToken and by WriteRemoteClose.
func TestWriterWritesAtExactly64KiB(t *testing.T) {
	var out countingWriter
	w := NewWriter(&out)
	check.NoError(t, w.WriteToken(bytes.Repeat([]byte{'x'}, writerBufferSize-1))) // a frame of 64 KiB
	check.Equal(t, 1, out.calls, "writes after a frame of exactly 64 KiB")
	check.Equal(t, writerBufferSize, out.Len())

	check.NoError(t, w.WriteToken(bytes.Repeat([]byte{'y'}, writerBufferSize-3))) // 64 KiB less 2
	check.Equal(t, 1, out.calls, "writes under 64 KiB")
	check.NoError(t, w.WriteRemoteClose())
	check.Equal(t, 2, out.calls, "writes once remoteClose brings the buffer to 64 KiB")
	check.Equal(t, 2*writerBufferSize, out.Len())
}
