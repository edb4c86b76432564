package actors

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/wire"
)

// The connection actor knows no protocol's bytes: it asks the codec that
// the TLS handshake negotiated (ALPN). Here two connections negotiate a
// length-prefixed protocol of the test's own, lpCodec, and everything goes
// through it: tokens sent before the handshake was done (encoded once it
// is), Send, SendBatch, remoteClose, and the tokens handed back unsent.

const lpProtocol = "test/lp"

// lpCodec frames are a kind byte, a uvarint length and that many bytes:
// kind 0 a token, 1 remoteClose (its reason), 2 an acknowledgement (8
// bytes, big-endian).
type lpCodec struct{}

func (lpCodec) Protocol() string { return lpProtocol }

func (lpCodec) NewDecoder(max int) (wire.FrameDecoder, error) {
	if max <= 0 {
		return nil, wire.ErrInvalidLimit
	}
	return &lpDecoder{max: max}, nil
}

func (lpCodec) AppendToken(dst, token []byte) []byte {
	dst = append(dst, 0)
	dst = binary.AppendUvarint(dst, uint64(len(token)))
	return append(dst, token...)
}

func (lpCodec) AppendControl(dst []byte, f wire.Frame) ([]byte, error) {
	switch f.Kind {
	case wire.KindRemoteClose:
		dst = append(dst, 1)
		dst = binary.AppendUvarint(dst, uint64(len(f.Token)))
		return append(dst, f.Token...), nil
	case wire.KindAck:
		dst = append(dst, 2, 8)
		return binary.BigEndian.AppendUint64(dst, f.Value), nil
	}
	return dst, wire.ErrUnsupportedFrame
}

func (lpCodec) FrameSizeHint(n int) int { return n + 1 + binary.MaxVarintLen64 }

func (lpCodec) WholeFrames(b []byte) (end, tokens int) {
	for {
		if len(b)-end < 2 {
			return end, tokens
		}
		n, k := binary.Uvarint(b[end+1:])
		if k <= 0 || uint64(len(b)-end-1-k) < n {
			return end, tokens
		}
		if b[end] == 0 {
			tokens++
		}
		end += 1 + k + int(n)
	}
}

var errLPFrame = errors.New("lp: bad frame")

// lpDecoder keeps what it has not decoded yet; its tokens are copies.
type lpDecoder struct {
	max int
	buf []byte
	err error
}

func (d *lpDecoder) AppendFramesInPlace(dst []wire.Frame, chunk []byte) ([]wire.Frame, error) {
	return d.AppendFrames(dst, chunk)
}

func (d *lpDecoder) AppendFrames(dst []wire.Frame, chunk []byte) ([]wire.Frame, error) {
	if d.err != nil {
		return dst, d.err
	}
	d.buf = append(d.buf, chunk...)
	for len(d.buf) >= 2 {
		n, k := binary.Uvarint(d.buf[1:])
		if k < 0 || n > uint64(d.max) || d.buf[0] > 2 {
			d.err = errLPFrame
			return dst, d.err
		}
		if k == 0 || uint64(len(d.buf)-1-k) < n {
			break
		}
		body := append([]byte{}, d.buf[1+k:1+k+int(n)]...)
		switch d.buf[0] {
		case 0:
			dst = append(dst, wire.Frame{Kind: wire.KindToken, Token: body})
		case 1:
			dst = append(dst, wire.Frame{Kind: wire.KindRemoteClose, Token: body})
		case 2:
			dst = append(dst, wire.Frame{Kind: wire.KindAck, Value: binary.BigEndian.Uint64(body)})
		}
		d.buf = d.buf[1+k+int(n):]
	}
	return dst, nil
}

func (d *lpDecoder) ChunkKept() bool { return false }
func (d *lpDecoder) Buffered() int   { return len(d.buf) }
func (d *lpDecoder) Held() int       { return cap(d.buf) }

// withLPCodec makes the ALPN protocol lpProtocol pick lpCodec for the test.
func withLPCodec(t *testing.T) {
	codecFor = func(p string) wire.Codec {
		if p == lpProtocol {
			return lpCodec{}
		}
		return wire.CodecFor(p)
	}
	t.Cleanup(func() { codecFor = wire.CodecFor })
}

// lpTLS returns the client's and the server's TLS configurations, both
// offering lpProtocol only.
func lpTLS(t *testing.T) (client, server *tls.Config) {
	client, server = clientTLS(t), serverTLS(t)
	client.NextProtos, server.NextProtos = []string{lpProtocol}, []string{lpProtocol}
	client.ServerName = "localhost"
	return client, server
}

func TestConnectionsSpeakTheNegotiatedCodec(t *testing.T) {
	withLPCodec(t)
	ccfg, scfg := lpTLS(t)
	a, b := net.Pipe()
	type closed struct {
		side string
		had  bool
	}
	closes := make(chan closed, 2)
	remoteCloses := make(chan []byte, 1)
	got := make(chan []byte, 16)
	cli, err := NewConnection(tls.Client(b, ccfg), ConnectionOptions{
		Handshake:     true,
		OnToken:       func(tok []byte, _ *Connection) { put(t, got, tok) },
		OnRemoteClose: func(c *Connection) { put(t, remoteCloses, nil); c.Close() },
		OnClose:       func(had bool) { put(t, closes, closed{"client", had}) },
	})
	if err != nil {
		t.Fatal(err)
	}
	// Sent before the handshake is done (the server does not exist yet):
	// the actor encodes them once it knows the protocol.
	if !cli.Send([]byte("one")) || !cli.SendBatch([][]byte{[]byte("two\n"), {}, []byte("\\x")}) {
		t.Fatal("a Send before the handshake was refused")
	}
	srv, err := NewConnection(tls.Server(a, scfg), ConnectionOptions{
		Handshake: true,
		OnToken: func(tok []byte, c *Connection) {
			if !c.Send(append([]byte("re:"), tok...)) {
				t.Errorf("server: Send refused")
			}
		},
		OnClose: func(had bool) { put(t, closes, closed{"server", had}) },
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"re:one", "re:two\n", "re:", "re:\\x"} {
		if tok := recv(t, got, want); string(tok) != want {
			t.Fatalf("client got %q, want %q", tok, want)
		}
	}
	// Counted as tokens while they waited, as frames once encoded: written,
	// they leave nothing in the queue.
	within(t, deadline, "the client's queue empty", func() bool { return cli.Queued() == 0 })
	for side, c := range map[string]*Connection{"server": srv, "client": cli} {
		if st, ok := c.TLSState(); !ok || st.NegotiatedProtocol != lpProtocol {
			t.Errorf("%s: negotiated %q, want %q", side, st.NegotiatedProtocol, lpProtocol)
		}
		if p := c.codec(); p == nil || p.Protocol() != lpProtocol {
			t.Errorf("%s speaks %v, want lpCodec", side, p)
		}
	}
	if !srv.RemoteClose() {
		t.Fatal("RemoteClose refused")
	}
	recv(t, remoteCloses, "remoteClose")
	for range 2 {
		if c := recv(t, closes, "close"); c.had {
			t.Errorf("%s closed with an error", c.side)
		}
	}
}

// Tokens sent before a handshake that fails are handed back, decoded.
func TestTokensSentBeforeAFailedHandshakeAreReported(t *testing.T) {
	withLPCodec(t)
	ccfg, _ := lpTLS(t)
	a, b := net.Pipe()
	dropped := make(chan [][]byte, 2)
	closes := make(chan bool, 1)
	cli, err := NewConnection(tls.Client(b, ccfg), ConnectionOptions{
		Handshake: true,
		Limits:    Limits{HandshakeTimeout: time.Minute},
		OnDropped: func(toks [][]byte, reason error) {
			if !errors.Is(reason, ErrNotSent) {
				t.Errorf("dropped with %v, want ErrNotSent", reason)
			}
			put(t, dropped, toks)
		},
		OnClose: func(had bool) { put(t, closes, had) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if !cli.Send([]byte("one")) || !cli.SendBatch([][]byte{[]byte("two"), []byte("three")}) || !cli.RemoteClose() {
		t.Fatal("a Send before the handshake was refused")
	}
	// The peer has not read the client's hello (a pipe write waits for the
	// reader): the handshake is not done. Now the peer goes: it fails.
	a.Close()
	toks := recv(t, dropped, "the dropped tokens")
	if len(toks) != 3 || string(toks[0]) != "one" || string(toks[1]) != "two" || string(toks[2]) != "three" {
		t.Errorf("dropped %q, want one, two, three", toks)
	}
	if !recv(t, closes, "the close") {
		t.Error("close without hadError after a failed handshake")
	}
}
