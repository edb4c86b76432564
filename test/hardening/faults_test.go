package hardening

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
	"github.com/tokenserver/tokenserver/wire"
)

// rawTCP dials the server without TLS.
func (r *rig) rawTCP() *net.TCPConn {
	r.t.Helper()
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", r.port))
	require.NoError(r.t, err)
	return c.(*net.TCPConn)
}

// reset closes c with a TCP reset instead of a clean close.
func reset(c *net.TCPConn) {
	_ = c.SetLinger(0)
	_ = c.Close()
}

// tlsOver runs a client TLS handshake over an existing TCP connection, so
// that the test can later write raw bytes under the TLS layer.
func (r *rig) tlsOver(raw *net.TCPConn) *tls.Conn {
	r.t.Helper()
	cfg, err := tlsio.ClientConfig(r.certs.ClientOptions())
	require.NoError(r.t, err)
	cfg.ServerName = "127.0.0.1"
	c := tls.Client(raw, cfg)
	require.NoError(r.t, c.Handshake())
	return c
}

// Random faults: resets mid-handshake, mid-frame and mid-write, garbage
// after a valid token, a TLS record of garbage, a close inside a frame. Each
// gives an error event and a close with hadError on that connection only; no
// panic, no leak, and the healthy client keeps working.
func TestRandomFaults(t *testing.T) {
	r := newRig(t, nil)
	rnd := rand.New(rand.NewPCG(7, 11))
	faults := []struct {
		name string
		run  func()
	}{
		{"reset mid-handshake", func() {
			raw := r.rawTCP()
			// A few bytes of a TLS record header, then a reset.
			_, _ = raw.Write([]byte{0x16, 0x03, 0x01, 0x02}[:1+rnd.IntN(4)])
			reset(raw)
		}},
		{"reset mid-frame", func() {
			raw := r.rawTCP()
			c := r.tlsOver(raw)
			frame := wire.AppendToken(nil, bytes.Repeat([]byte("partial"), 100))
			_, _ = c.Write(frame[:1+rnd.IntN(len(frame)-2)])
			reset(raw)
		}},
		{"reset mid-write", func() {
			raw := r.rawTCP()
			c := r.tlsOver(raw)
			// A large token whose echo is still being written when we reset.
			_, _ = c.Write(wire.AppendToken(nil, bytes.Repeat([]byte{'w'}, 4<<20)))
			buf := make([]byte, 1024)
			_, _ = c.Read(buf)
			reset(raw)
		}},
		{"garbage after a valid token", func() {
			c := r.tlsDial()
			defer c.Close()
			_, _ = c.Write([]byte("valid\n\\q garbage \x00\xff\n"))
			_ = readUntilClosed(c, deadline)
		}},
		{"a TLS record of garbage", func() {
			raw := r.rawTCP()
			c := r.tlsOver(raw)
			_, _ = c.Write([]byte("fine\n"))
			garbage := make([]byte, 64)
			for i := range garbage {
				garbage[i] = byte(rnd.Uint32())
			}
			_, _ = raw.Write(append([]byte{0x17, 0x03, 0x03, 0x00, 0x40}, garbage...))
			_ = readUntilClosed(raw, deadline)
			raw.Close()
		}},
		{"clean close inside a frame", func() {
			c := r.tlsDial()
			_, _ = c.Write([]byte("no newline here"))
			_ = c.Close()
		}},
	}
	for round := 0; round < 3; round++ {
		for _, i := range rnd.Perm(len(faults)) {
			f := faults[i]
			before := len(r.srv.Connections())
			f.run()
			err := wait(t, r.errCh, "error event for "+f.name)
			require.NotEmpty(t, err.Error(), f.name)
			require.True(t, wait(t, r.closes, "close for "+f.name), "%s: close with hadError", f.name)
			t.Logf("%s: %v (%s)", f.name, err, actors.ErrorCode(err))
			require.Eventually(t, func() bool { return len(r.srv.Connections()) <= before }, deadline, 5*time.Millisecond)
			r.checkHealthy("after " + f.name)
		}
	}
	require.Len(t, r.srv.Connections(), 1)
	require.Equal(t, actors.ONLINE, r.srv.Status())
}
