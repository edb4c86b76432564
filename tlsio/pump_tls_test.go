package tlsio

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// recordConn is a net.Conn that notes the length of every TLS record written
// through it (the records' headers give them) and passes the bytes on.
type recordConn struct {
	net.Conn
	mu      sync.Mutex
	pending []byte // bytes of a record not complete yet
	records []int  // ciphertext lengths of the records written
}

func (c *recordConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.pending = append(c.pending, b...)
	for len(c.pending) >= 5 {
		n := int(binary.BigEndian.Uint16(c.pending[3:5]))
		if len(c.pending) < 5+n {
			break
		}
		c.records = append(c.records, n)
		c.pending = c.pending[5+n:]
	}
	c.mu.Unlock()
	return c.Conn.Write(b)
}

func (c *recordConn) lengths() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.records...)
}

// tlsPipe returns the two ends of a mutually authenticated TLS connection
// over net.Pipe, handshaken, and the recorder of the server's records.
func tlsPipe(t *testing.T) (server, client *tls.Conn, rec *recordConn) {
	t.Helper()
	d := tlsTestDevCerts(t)
	scfg, ccfg := tlsTestServerConfig(t, d.ServerOptions()), tlsTestClientConfig(t, d.ClientOptions())
	// net.Pipe has no buffer: session tickets, written after the client's
	// handshake is done, would wait for a read that nobody makes.
	scfg.SessionTicketsDisabled = true
	ccfg.ServerName = "localhost"
	// Full records from the first byte (Go starts a connection with short
	// ones, for latency, up to 128 KiB).
	scfg.DynamicRecordSizingDisabled = true
	ccfg.DynamicRecordSizingDisabled = true
	a, b := net.Pipe()
	rec = &recordConn{Conn: a}
	server, client = tls.Server(rec, scfg), tls.Client(b, ccfg)
	errs := make(chan error, 1)
	go func() {
		err := client.Handshake()
		if err != nil {
			b.Close() // ends the server's handshake too
		}
		errs <- err
	}()
	serr := server.Handshake()
	if err := pumpWait(t, errs, "client handshake"); err != nil || serr != nil {
		t.Fatalf("handshake: client %v, server %v", err, serr)
	}
	t.Cleanup(func() {
		server.NetConn().Close()
		client.NetConn().Close()
	})
	return server, client, rec
}

// TestWritePumpFillsTLSRecords: a batch of buffers of odd sizes leaves in
// full records (16 KiB of plaintext each) but the last, in order and intact.
func TestWritePumpFillsTLSRecords(t *testing.T) {
	server, client, rec := tlsPipe(t)
	before := len(rec.lengths()) // the handshake's records
	var batch [][]byte
	var want []byte
	for i, n := range []int{100, 10 << 10, 17 << 10, 3, 40 << 10, 5000} {
		b := bytes.Repeat([]byte{byte('a' + i)}, n)
		batch = append(batch, b)
		want = append(want, b...)
	}
	written := make(chan int, 1)
	stopped := make(chan error, 1)
	p := StartWritePump(server, 5*time.Second, func(n int) { written <- n }, func(err error) { stopped <- err })
	got := make(chan []byte, 1)
	go func() {
		buf := make([]byte, len(want))
		_, _ = io.ReadFull(client, buf)
		got <- buf
	}()
	p.Write(batch...)
	if n := pumpWait(t, written, "written"); n != len(want) {
		t.Fatalf("written %d, want %d", n, len(want))
	}
	if !bytes.Equal(pumpWait(t, got, "peer"), want) {
		t.Fatal("the peer read other bytes than the batch")
	}
	records := rec.lengths()[before:]
	full := len(want) / maxRecordPlaintext
	if len(records) != full+1 {
		t.Fatalf("%d records for %d bytes (%v), want %d full ones and one short", len(records), len(want), records, full)
	}
	for i, n := range records[:full] {
		if n != records[0] || n <= maxRecordPlaintext {
			t.Fatalf("record %d carries %d bytes of ciphertext, want every one but the last full (%v)", i, n, records)
		}
	}
	p.Close()
	if err := pumpWait(t, stopped, "stop"); err != nil {
		t.Fatal(err)
	}
}

// TestWritePumpGatheredBytesCountOnFailure: a write that fails after some
// gathered records went out reports exactly the bytes of those records.
func TestWritePumpGatheredBytesCountOnFailure(t *testing.T) {
	server, client, _ := tlsPipe(t)
	stopped := make(chan error, 1)
	p := StartWritePump(server, 5*time.Second, func(int) {}, func(err error) { stopped <- err })
	// 3 × 10 KiB: the first record gathers 16 KiB, the peer reads it and
	// closes, and the rest cannot be written.
	batch := [][]byte{bytes.Repeat([]byte("x"), 10<<10), bytes.Repeat([]byte("y"), 10<<10), bytes.Repeat([]byte("z"), 10<<10)}
	p.Write(batch...)
	buf := make([]byte, maxRecordPlaintext)
	if _, err := io.ReadFull(client, buf); err != nil {
		t.Fatal(err)
	}
	client.NetConn().Close()
	err := pumpWait(t, stopped, "stop")
	we, ok := err.(*WriteError)
	if !ok {
		t.Fatalf("stop error = %v, want a *WriteError", err)
	}
	if we.Written != maxRecordPlaintext {
		t.Fatalf("Written = %d, want %d (the one record the peer read)", we.Written, maxRecordPlaintext)
	}
}

// TestReadPumpReusesRecycledBuffer: a chunk given back is read into again,
// and a TLS connection's buffer is one record's plaintext at most.
func TestReadPumpReusesRecycledBuffer(t *testing.T) {
	server, client, _ := tlsPipe(t)
	chunks := make(chan []byte, 4)
	stopped := make(chan error, 1)
	p := StartReadPump(server, ReadConfig{BufferSize: 64 << 10}, func(c []byte) { chunks <- c }, func(err error) { stopped <- err })
	record := bytes.Repeat([]byte("r"), maxRecordPlaintext)
	go func() {
		for range 16 {
			if _, err := client.Write(record); err != nil {
				return
			}
		}
	}()
	// The buffer grows from 4 KiB while reads fill it, and stops at a
	// record: no chunk is ever larger.
	var c []byte
	for {
		c = pumpWait(t, chunks, "chunk")
		if len(c) > maxRecordPlaintext || cap(c) > maxRecordPlaintext {
			t.Fatalf("chunk of %d bytes in a buffer of %d: larger than a record", len(c), cap(c))
		}
		if cap(c) == maxRecordPlaintext {
			break
		}
		p.Release()
	}
	// Handed over whole: the pump has taken a new buffer already, may have
	// read up to its window ahead, and takes this one back at its next
	// hand-over.
	first := &c[:1][0]
	p.Recycle(c)
	p.Release()
	reused := false
	for i := 0; i < DefaultReadWindow+2 && !reused; i++ {
		next := pumpWait(t, chunks, "chunk after recycle")
		reused = &next[:1][0] == first
		p.Release()
	}
	if !reused {
		t.Fatal("the recycled buffer was not read into again")
	}
	p.Stop()
	server.NetConn().Close()
	pumpWait(t, stopped, "stop")
	pumpWait(t, p.Done(), "pump exit")
}

// TestReadPumpKeepsEveryRecycledBuffer: the receiver gives chunks back
// later than the pump reads ahead, several at once; the pump keeps up to its
// window of them and reads into every one again (with one spare, all but
// one were dropped and a new 16 KiB buffer allocated in their stead). A
// short copy given back first takes no spare's place.
func TestReadPumpKeepsEveryRecycledBuffer(t *testing.T) {
	server, client, _ := tlsPipe(t)
	chunks := make(chan []byte, 2*DefaultReadWindow)
	stopped := make(chan error, 1)
	p := StartReadPump(server, ReadConfig{}, func(c []byte) { chunks <- c }, func(err error) { stopped <- err })
	record := bytes.Repeat([]byte("r"), maxRecordPlaintext)
	go func() {
		for range 64 { // more than the test reads; ends when the pipe closes
			if _, err := client.Write(record); err != nil {
				return
			}
		}
	}()
	// Once the buffer has grown to a record, hold the window's chunks
	// without releasing them: the pump stops for lack of credit.
	var held [][]byte
	for len(held) < DefaultReadWindow {
		c := pumpWait(t, chunks, "chunk")
		if cap(c) < maxRecordPlaintext {
			p.Release()
			continue
		}
		held = append(held, c)
	}
	p.Recycle(make([]byte, 100)) // a short read's copy
	recycled := map[*byte]bool{}
	for _, c := range held {
		recycled[&c[:1][0]] = true
		p.Recycle(c)
	}
	// The pump reads into the buffer it holds, then into each recycled
	// one as it hands the one before over.
	for i := range DefaultReadWindow + 1 {
		p.Release()
		c := pumpWait(t, chunks, "chunk after recycle")
		if cap(c) != maxRecordPlaintext {
			t.Fatalf("chunk %d after recycling in a buffer of %d bytes, want %d", i, cap(c), maxRecordPlaintext)
		}
		delete(recycled, &c[:1][0])
	}
	if len(recycled) > 0 {
		t.Fatalf("%d of the %d buffers given back were not read into again", len(recycled), DefaultReadWindow)
	}
	p.Stop()
	server.NetConn().Close()
	pumpWait(t, stopped, "stop")
	pumpWait(t, p.Done(), "pump exit")
}

// fakeDeadlineConn counts SetWriteDeadline calls.
type fakeDeadlineConn struct {
	net.Conn
	sets []time.Time
}

func (c *fakeDeadlineConn) SetWriteDeadline(t time.Time) error {
	c.sets = append(c.sets, t)
	return nil
}

// TestDeadlineMovesOnlyWhenTooClose: the write deadline is set once, then
// left alone while at least the timeout remains, and every write starts with
// at least the timeout and at most a slack more ahead of it.
func TestDeadlineMovesOnlyWhenTooClose(t *testing.T) {
	c := &fakeDeadlineConn{}
	var d deadline
	const timeout = time.Hour // far more than this test takes
	for range 100 {
		start := time.Now()
		if err := d.ensure(c, timeout); err != nil {
			t.Fatal(err)
		}
		if ahead := d.at.Sub(start); ahead < timeout || ahead > timeout+timeout/8+time.Minute {
			t.Fatalf("deadline %v ahead, want between %v and %v", ahead, timeout, timeout+timeout/8)
		}
	}
	if len(c.sets) != 1 {
		t.Fatalf("%d deadlines set for 100 writes, want 1", len(c.sets))
	}
	// Once less than the timeout is left, it moves.
	d.at = time.Now().Add(timeout - time.Second)
	if err := d.ensure(c, timeout); err != nil {
		t.Fatal(err)
	}
	if len(c.sets) != 2 || c.sets[1] != d.at {
		t.Fatalf("deadline not moved: %d sets", len(c.sets))
	}
}
