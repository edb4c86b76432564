package tlsio

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

func pumpWait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func TestReadPumpDeliversChunksAndStopsOnEOF(t *testing.T) {
	a, b := net.Pipe()
	chunks := make(chan []byte, 16)
	stopped := make(chan error, 1)
	p := StartReadPump(a, ReadConfig{}, func(c []byte) { chunks <- c }, func(err error) { stopped <- err })
	go func() {
		b.Write([]byte("hello\n"))
		b.Write([]byte("world\n"))
		b.Close()
	}()
	var got []byte
	for len(got) < 12 {
		c := pumpWait(t, chunks, "chunk")
		got = append(got, c...)
		p.Release()
	}
	if string(got) != "hello\nworld\n" {
		t.Fatalf("got %q", got)
	}
	if err := pumpWait(t, stopped, "stop"); !errors.Is(err, io.EOF) {
		t.Fatalf("stop error = %v, want EOF", err)
	}
	pumpWait(t, p.Done(), "pump exit")
	if len(chunks) > 0 {
		t.Errorf("a chunk of %d bytes handed on after the data, at EOF", len(<-chunks))
	}
	a.Close()
}

func TestReadPumpStopsReadingWhenWindowIsFull(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	chunks := make(chan []byte, 16)
	stopped := make(chan error, 1)
	p := StartReadPump(a, ReadConfig{Window: 2}, func(c []byte) { chunks <- c }, func(err error) { stopped <- err })
	// Two writes fill the window; the third write must block because the
	// pump does not read (net.Pipe is unbuffered) until a chunk is released.
	b.Write([]byte("1"))
	b.Write([]byte("2"))
	pumpWait(t, chunks, "chunk 1")
	pumpWait(t, chunks, "chunk 2")
	third := make(chan struct{})
	go func() { b.Write([]byte("3")); close(third) }()
	select {
	case <-third:
		t.Fatal("pump read past its window")
	case <-time.After(100 * time.Millisecond): // a bounded wait for a non-event
	}
	p.Release()
	pumpWait(t, third, "third write after release")
	if c := pumpWait(t, chunks, "chunk 3"); string(c) != "3" {
		t.Fatalf("chunk 3 = %q", c)
	}
	// Out of credits, the pump waits without reading: Stop ends it.
	p.Stop()
	a.Close()
	pumpWait(t, stopped, "stop")
	pumpWait(t, p.Done(), "pump exit")
}

func TestReadPumpBeforeFailureStopsWithoutReading(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	boom := errors.New("handshake failed")
	stopped := make(chan error, 1)
	p := StartReadPump(a, ReadConfig{Before: func() error { return boom }},
		func([]byte) { t.Error("no chunk expected") }, func(err error) { stopped <- err })
	if err := pumpWait(t, stopped, "stop"); !errors.Is(err, boom) {
		t.Fatalf("stop error = %v", err)
	}
	pumpWait(t, p.Done(), "pump exit")
}

func TestWritePumpWritesBuffersInOrderThenStopsOnClose(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	written := make(chan int, 4)
	stopped := make(chan error, 1)
	p := StartWritePump(a, time.Second, func(n int) { written <- n }, func(err error) { stopped <- err })
	got := make(chan []byte, 1)
	go func() {
		all, _ := io.ReadAll(b)
		got <- all
	}()
	if !p.Write([]byte("abc\n")) {
		t.Fatal("Write refused on an idle pump")
	}
	if n := pumpWait(t, written, "written"); n != 4 {
		t.Fatalf("written %d", n)
	}
	p.Write(bytes.Repeat([]byte("x"), 600<<10)) // more than one write slice
	if n := pumpWait(t, written, "written"); n != 600<<10 {
		t.Fatalf("written %d", n)
	}
	p.Close()
	if err := pumpWait(t, stopped, "stop"); err != nil {
		t.Fatalf("stop error = %v", err)
	}
	a.Close()
	if all := pumpWait(t, got, "reader"); len(all) != 4+600<<10 || string(all[:4]) != "abc\n" {
		t.Fatalf("peer read %d bytes", len(all))
	}
}

// A timeout of 0, as a negative one, sets no write deadline: writes to a
// peer that reads go through.
func TestWritePumpWithoutTimeout(t *testing.T) {
	for _, timeout := range []time.Duration{0, -time.Second} {
		a, b := net.Pipe()
		written := make(chan int, 1)
		stopped := make(chan error, 1)
		p := StartWritePump(a, timeout, func(n int) { written <- n }, func(err error) { stopped <- err })
		go io.Copy(io.Discard, b)
		p.Write([]byte("no deadline\n"))
		select {
		case n := <-written:
			if n != 12 {
				t.Errorf("timeout %v: written %d, want 12", timeout, n)
			}
		case err := <-stopped:
			t.Errorf("timeout %v: the pump stopped: %v", timeout, err)
		case <-time.After(5 * time.Second):
			t.Fatalf("timeout %v: nothing written", timeout)
		}
		p.Close()
		pumpWait(t, p.Done(), "pump exit")
		a.Close()
		b.Close()
	}
}

func TestWritePumpReportsSlowConsumer(t *testing.T) {
	a, b := net.Pipe() // nobody reads b
	defer a.Close()
	defer b.Close()
	stopped := make(chan error, 1)
	p := StartWritePump(a, 50*time.Millisecond, func(int) {}, func(err error) { stopped <- err })
	p.Write([]byte("never read\n"))
	if err := pumpWait(t, stopped, "stop"); !errors.Is(err, ErrWriteTimeout) {
		t.Fatalf("stop error = %v, want ErrWriteTimeout", err)
	}
	pumpWait(t, p.Done(), "pump exit")
}

func TestWritePumpReportsBytesWrittenBeforeFailure(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	stopped := make(chan error, 1)
	p := StartWritePump(a, 5*time.Second, func(int) {}, func(err error) { stopped <- err })
	first, second := []byte("first\n"), bytes.Repeat([]byte("y"), 100)
	p.Write(first, second)
	// The peer reads the first buffer whole, then closes: the second fails.
	buf := make([]byte, len(first))
	if _, err := io.ReadFull(b, buf); err != nil {
		t.Fatal(err)
	}
	b.Close()
	err := pumpWait(t, stopped, "stop")
	var we *WriteError
	if !errors.As(err, &we) {
		t.Fatalf("stop error = %v, want a *WriteError", err)
	}
	if we.Written != len(first) {
		t.Fatalf("Written = %d, want %d", we.Written, len(first))
	}
	if !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("stop error = %v, want it to wrap io.ErrClosedPipe", err)
	}
	pumpWait(t, p.Done(), "pump exit")
}

// Recycle keeps a chunk as small as the smallest read buffer (a pump whose
// BufferSize is the minimum reads into those), and drops a smaller one (a
// short read's copy).
func TestRecycleKeepsTheSmallestReadBuffer(t *testing.T) {
	p := &ReadPump{spare: make(chan []byte, 2)}
	p.Recycle(make([]byte, minReadBufferSize-1))
	if n := len(p.spare); n != 0 {
		t.Fatalf("a chunk under %d bytes kept (%d spare)", minReadBufferSize, n)
	}
	p.Recycle(make([]byte, 10, minReadBufferSize))
	if n := len(p.spare); n != 1 {
		t.Fatalf("a chunk of %d bytes' capacity dropped", minReadBufferSize)
	}
	if c := <-p.spare; len(c) != minReadBufferSize {
		t.Fatalf("the spare chunk has %d bytes, want its whole capacity %d", len(c), minReadBufferSize)
	}
}
