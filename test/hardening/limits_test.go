package hardening

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
	"github.com/tokenserver/tokenserver/wire"
)

// 200 TCP connections that never start the handshake are all closed after
// the handshake timeout, each with an error event, and nothing of them
// reaches the user as a connection.
func TestSilentConnectionsClosedAfterHandshakeTimeout(t *testing.T) {
	const n = 200
	connections := make(chan struct{}, n)
	r := newRig(t, func(o *actors.ServerOptions) {
		o.Limits.HandshakeTimeout = 300 * time.Millisecond
		o.MaxPendingPerAddr = n // all from one address: this test is about the timeout
		o.OnConnection = func(*actors.Connection) { connections <- struct{}{} }
	})
	<-connections // the healthy client's
	conns := make([]net.Conn, 0, n)
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", r.port))
		require.NoError(t, err)
		conns = append(conns, c)
	}
	for i, c := range conns {
		err := readUntilClosed(c, deadline)
		require.Error(t, err)
		var ne net.Error
		require.False(t, errors.As(err, &ne) && ne.Timeout(), "connection %d was not closed by the server", i)
		c.Close()
	}
	require.Eventually(t, func() bool { return r.errorsMatching(actors.ErrHandshake) == n }, deadline, 10*time.Millisecond)
	require.Equal(t, n, r.errorsMatching(tlsio.ErrHandshakeTimeout))
	require.Empty(t, connections, "no silent connection became a connection")
	require.Len(t, r.srv.Connections(), 1)
	r.checkHealthy("after the silent connections")
}

// A client that sends valid tokens and never reads the replies: past the
// high-water mark its connection stops reading (TCP pushes back on the
// client's writes), so the queue stays bounded by the high-water mark plus
// one read window of echoes; after the write timeout it is cut as a slow
// consumer, and the replies it never got are reported dropped, while the
// healthy client goes on.
func TestClientThatNeverReadsIsClosed(t *testing.T) {
	const hwm = 256 << 10
	type drop struct {
		n      int
		reason error
	}
	conns := make(chan *actors.Connection, 4)
	dropped := make(chan drop, 16)
	r := newRig(t, func(o *actors.ServerOptions) {
		o.Limits.HighWaterMark = hwm
		o.Limits.WriteTimeout = 500 * time.Millisecond
		o.OnConnection = func(c *actors.Connection) { conns <- c }
		o.OnDropped = func(_ *actors.Connection, toks [][]byte, reason error) {
			select { // checked by the test, never from a callback
			case dropped <- drop{len(toks), reason}:
			default:
			}
		}
	})
	<-conns
	bad := r.tlsDial()
	defer bad.Close()
	greedy := wait(t, conns, "greedy connection")
	tok := bytes.Repeat([]byte("never read me "), 1000)
	frame := wire.AppendToken(nil, tok)
	// The greedy client writes without a deadline (a timed-out TLS write
	// leaves the conn unusable, and would stop it early on a loaded
	// machine), until the server cuts it; 10,000 frames (140 MB) is far
	// more than any socket buffers hold.
	writerDone := make(chan error, 1)
	go func() {
		for i := 0; i < 10000; i++ {
			if _, err := bad.Write(frame); err != nil {
				writerDone <- err
				return
			}
		}
		writerDone <- nil
	}()
	maxQueued, paused := 0, false
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	stop := time.After(deadline)
	for !greedy.IsDead() {
		maxQueued = max(maxQueued, greedy.Queued())
		paused = paused || greedy.ReadPaused()
		select {
		case <-tick.C:
		case <-stop:
			t.Fatal("the connection that never reads was not closed")
		}
	}
	// Cut means the socket closes at once: the connection actor must not
	// block on a close_notify the peer will never read.
	select {
	case err := <-writerDone:
		require.Error(t, err, "the greedy client wrote 140 MB without being cut")
	case <-time.After(2 * time.Second):
		t.Fatal("the greedy client's socket was still open 2 s after its connection failed")
	}
	err := wait(t, r.errCh, "slow consumer error")
	require.ErrorIs(t, err, actors.ErrSlowConsumer)
	require.ErrorIs(t, err, tlsio.ErrWriteTimeout)
	require.True(t, paused, "the connection stopped reading past the high-water mark")
	window := tlsio.DefaultReadWindow * tlsio.DefaultReadBufferSize
	require.LessOrEqual(t, maxQueued, hwm+window+len(frame), "queued bytes stay bounded")
	d := wait(t, dropped, "unsent replies reported")
	require.Greater(t, d.n, 0)
	require.True(t, errors.Is(d.reason, actors.ErrNotSent) || errors.Is(d.reason, actors.ErrMaybeSent),
		"dropped with %v, want ErrNotSent or ErrMaybeSent", d.reason)
	require.Equal(t, actors.CodeSlowConsumer, actors.ErrorCode(err))
	require.True(t, wait(t, r.closes, "close of the greedy connection"))
	r.checkHealthy("after the greedy client")
}

// Connections over the maximum are refused at once with an event, and
// accepted again once others close.
func TestMaxConnections(t *testing.T) {
	r := newRig(t, func(o *actors.ServerOptions) { o.MaxConnections = 3 })
	a, b := r.tlsDial(), r.tlsDial()
	defer a.Close()
	defer b.Close()
	require.Eventually(t, func() bool { return len(r.srv.Connections()) == 3 }, deadline, 5*time.Millisecond)
	// Each Dial returns when the client's handshake is done; the server
	// counts the connection from accept on, so the next one is refused.
	over, err := r.tryDial()
	if err == nil { // the handshake may finish before the close is seen
		err = readUntilClosed(over, deadline)
		over.Close()
	}
	require.Error(t, err)
	require.ErrorIs(t, wait(t, r.errCh, "refusal"), actors.ErrTooManyConnections)
	require.True(t, wait(t, r.closes, "refused connection closed"))
	r.checkHealthy("while full")

	a.Close()
	require.Eventually(t, func() bool { return len(r.srv.Connections()) == 2 }, deadline, 5*time.Millisecond)
	again := r.tlsDial()
	defer again.Close()
	_, err = again.Write(wire.AppendToken(nil, []byte("accepted again")))
	require.NoError(t, err)
	dec, _ := wire.NewDecoder(1024)
	buf := make([]byte, 256)
	_ = again.SetReadDeadline(time.Now().Add(deadline))
	n, err := again.Read(buf)
	require.NoError(t, err)
	frames, err := dec.AppendFrames(nil, buf[:n])
	require.NoError(t, err)
	require.Equal(t, "accepted again", string(frames[0].Token))
	r.checkHealthy("at the end")
}

// Opening and closing 1,000 connections leaves the process's count of open
// file descriptors where it started.
func TestNoDescriptorLeak(t *testing.T) {
	r := newRig(t, nil)
	before := countFDs(t)
	for i := 0; i < 1000; i++ {
		var c net.Conn
		if i%2 == 0 {
			c = r.tlsDial()
			_, _ = c.Write([]byte("x\n"))
		} else {
			var err error
			c, err = net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", r.port))
			require.NoError(t, err)
		}
		c.Close()
	}
	require.Eventually(t, func() bool { return len(r.srv.Connections()) == 1 }, deadline, 10*time.Millisecond)
	require.Eventually(t, func() bool { return countFDs(t) <= before }, deadline, 20*time.Millisecond,
		"descriptors: %d before, %d after", before, countFDs(t))
	r.checkHealthy("after 1,000 connections")
}

func countFDs(t *testing.T) int {
	entries, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(entries)
}
