package main

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokenserver/tokenserver/wire"
)

// Bench modes.
const (
	modeRoundtrip = "roundtrip"
	modePipeline  = "pipeline"
)

const (
	// windowBytes bounds the encoded bytes a pipelining connection has
	// outstanding, whatever --window says, so that memory stays bounded on
	// both sides (and under the server's outbound high-water mark).
	windowBytes = 4 << 20
	// writeBatchBytes bounds one write of a pipelining connection.
	writeBatchBytes = 64 << 10
	// payloadKinds is the number of distinct random payload bodies.
	payloadKinds = 64
)

// benchConfig is one bench run against a server at addr. It is what a test
// builds to run bench against its own server.
type benchConfig struct {
	addr     string      // HOST:PORT or unix:PATH
	tls      *tls.Config // client configuration (certificate, CA)
	target   string      // description for the report
	mode     string      // modeRoundtrip or modePipeline
	size     int         // payload bytes per token
	escapes  int         // one payload byte in escapes is a newline or a backslash (0: random bytes)
	count    int64       // total tokens across connections; 0: no limit
	conns    int         // connections
	duration time.Duration
	window   int           // pipeline: tokens outstanding per connection
	timeout  time.Duration // a reply that takes longer is an error
	progress *progress     // drawn while the run goes, when non-nil
	// protocols the connections offer by ALPN (nil: token/2, then token/1);
	// a connection speaks the one the server selects, token/1 when none.
	protocols []string
}

// benchResult is what bench measured.
type benchResult struct {
	Target       string  `json:"target"`
	Mode         string  `json:"mode"`
	Conns        int     `json:"conns"`
	Size         int     `json:"size_bytes"`
	Protocol     string  `json:"protocol"`
	Window       int     `json:"window,omitempty"`
	Tokens       int64   `json:"tokens"`
	Seconds      float64 `json:"seconds"`
	TokensPerSec float64 `json:"tokens_per_sec"`
	MBPerSec     float64 `json:"mb_per_sec"`
	StoppedBy    string  `json:"stopped_by"`
	Latency      struct {
		P50 float64 `json:"p50"`
		P90 float64 `json:"p90"`
		P99 float64 `json:"p99"`
		Max float64 `json:"max"`
	} `json:"latency_us"`
	hist *histogram
}

// bench is the state shared by the connections of one run.
type bench struct {
	cfg       benchConfig
	start     time.Time
	remaining atomic.Int64 // tokens left to claim
	stop      atomic.Bool  // duration over
	prefix    int          // leading payload bytes that carry the sequence number
	payloads  [payloadKinds][]byte

	errOnce sync.Once
	err     error
	cancel  context.CancelFunc
}

// runBench connects cfg.conns connections to cfg.addr, sends tokens until
// cfg.count tokens or cfg.duration, whichever comes first, verifies every
// reply byte for byte and in order, and returns the measurements. A reply
// that differs, is missing or is late is an error.
func runBench(ctx context.Context, cfg benchConfig) (benchResult, error) {
	if cfg.conns <= 0 {
		cfg.conns = 1
	}
	if cfg.window <= 0 {
		cfg.window = 1
	}
	if cfg.timeout <= 0 {
		cfg.timeout = 10 * time.Second
	}
	if cfg.count <= 0 && cfg.duration <= 0 {
		cfg.duration = 10 * time.Second
	}
	if cfg.mode != modeRoundtrip && cfg.mode != modePipeline {
		return benchResult{}, fmt.Errorf("unknown mode %q", cfg.mode)
	}
	b := &bench{cfg: cfg, prefix: min(8, cfg.size/2)}
	b.makePayloads()
	if cfg.mode == modePipeline {
		// The bound counts the frames as they are encoded: random bytes
		// escape about one byte in 128, not every byte.
		b.cfg.window = max(1, min(cfg.window, windowBytes/b.maxFrame()))
	}
	if cfg.count > 0 {
		b.remaining.Store(cfg.count)
	} else {
		b.remaining.Store(math.MaxInt64)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	b.cancel = cancel
	conns := make([]*benchConn, 0, cfg.conns)
	closeAll := func() {
		for _, c := range conns {
			_ = c.conn.NetConn().Close() // unblocks reads and writes at once
		}
	}
	tcfg := cfg.tls.Clone()
	tcfg.NextProtos = offered(cfg.protocols)
	for i := range cfg.conns {
		c, err := dialBenchConn(ctx, b, i+1, tcfg)
		if err != nil {
			closeAll()
			return benchResult{}, err
		}
		conns = append(conns, c)
	}
	stopAbort := context.AfterFunc(ctx, closeAll)
	defer stopAbort()

	b.start = time.Now()
	if cfg.duration > 0 {
		t := time.AfterFunc(cfg.duration, func() { b.stop.Store(true) })
		defer t.Stop()
	}
	progressDone := make(chan struct{})
	if cfg.progress != nil {
		go b.reportProgress(ctx, conns, progressDone)
	} else {
		close(progressDone)
	}

	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() {
			var err error
			if cfg.mode == modeRoundtrip {
				err = c.roundtrip(ctx)
			} else {
				err = c.pipeline(ctx)
			}
			if err != nil {
				b.fail(err)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(b.start)
	if err := b.err; err != nil || ctx.Err() != nil {
		if err == nil { // the caller's context ended
			err = fmt.Errorf("bench interrupted: %w", ctx.Err())
		}
		stopAbort()
		closeAll() // here rather than in the AfterFunc goroutine
		cancel()
		<-progressDone
		return benchResult{}, err
	}
	stopAbort()
	cancel()
	<-progressDone
	// Close cleanly so the server sees an orderly end: token/2 ends its
	// sessions (END both ways) first, then close_notify.
	if err := endAll(conns); err != nil {
		return benchResult{}, err
	}

	res := benchResult{
		Target: cfg.target, Mode: cfg.mode, Conns: cfg.conns, Size: cfg.size,
		Protocol: conns[0].proto, Seconds: elapsed.Seconds(), hist: &histogram{},
	}
	for _, c := range conns {
		if c.proto != res.Protocol {
			res.Protocol = "token/1 and token/2"
		}
	}
	if cfg.mode == modePipeline {
		res.Window = b.cfg.window
	}
	for _, c := range conns {
		res.Tokens += c.acked.Load()
		res.hist.merge(&c.hist)
	}
	res.StoppedBy = "duration"
	if cfg.count > 0 && b.remaining.Load() == 0 {
		res.StoppedBy = "count"
	}
	if res.Seconds > 0 {
		res.TokensPerSec = float64(res.Tokens) / res.Seconds
		res.MBPerSec = float64(res.Tokens) * float64(cfg.size) / res.Seconds / 1e6
	}
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	res.Latency.P50 = us(res.hist.percentile(0.50))
	res.Latency.P90 = us(res.hist.percentile(0.90))
	res.Latency.P99 = us(res.hist.percentile(0.99))
	res.Latency.Max = us(time.Duration(res.hist.max))
	return res, nil
}

// fail records the first error and aborts the run.
func (b *bench) fail(err error) {
	b.errOnce.Do(func() {
		b.err = err
		b.cancel()
	})
}

// claim takes up to n tokens of the count; 0 means the count is used up.
func (b *bench) claim(n int64) int64 {
	for {
		r := b.remaining.Load()
		if r <= 0 {
			return 0
		}
		k := min(n, r)
		if b.remaining.CompareAndSwap(r, r-k) {
			return k
		}
	}
}

// now is the time since the start, for send stamps.
func (b *bench) now() int64 { return int64(time.Since(b.start)) }

// makePayloads makes the random payload bodies. Each contains at least one
// newline and one backslash (when the size allows), so that every token
// exercises escaping; with escapes, one byte in escapes is one of them.
func (b *bench) makePayloads() {
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	size := b.cfg.size
	for k := range b.payloads {
		p := make([]byte, size)
		for i := range p {
			p[i] = byte(rng.Uint32())
			if b.cfg.escapes > 0 && rng.IntN(b.cfg.escapes) == 0 {
				p[i] = "\n\\"[rng.IntN(2)]
			}
		}
		body := p[b.prefix:]
		switch {
		case len(body) >= 2:
			i := rng.IntN(len(body))
			j := (i + 1 + rng.IntN(len(body)-1)) % len(body)
			body[i], body[j] = '\n', '\\'
		case len(body) == 1:
			body[0] = "\n\\"[k%2]
		}
		b.payloads[k] = p
	}
}

// maxFrame is the encoded size of the largest frame the payloads make, in
// either protocol (token/1's, but for empty tokens), so that the window is
// the same whichever the server speaks.
func (b *bench) maxFrame() int {
	n := 1
	for _, p := range b.payloads {
		n = max(n, wire.EncodedLen(p), wire.DataLen(len(p)))
	}
	return n
}

// fill writes the payload of token seq (0-based, per connection) into dst:
// the sequence number in the first b.prefix bytes, then a random body.
func (b *bench) fill(dst []byte, seq int64) []byte {
	dst = append(dst[:0], b.payloads[seq%payloadKinds]...)
	var s [8]byte
	binary.LittleEndian.PutUint64(s[:], uint64(seq))
	copy(dst[:b.prefix], s[:])
	return dst
}

// verify checks the reply to token seq of connection conn.
func (b *bench) verify(conn int, seq int64, got, scratch []byte) error {
	want := b.fill(scratch, seq)
	if string(got) == string(want) {
		return nil
	}
	msg := fmt.Sprintf("verification failed: connection %d, reply to token %d: ", conn, seq+1)
	if len(got) != len(want) {
		msg += fmt.Sprintf("%d bytes, expected %d", len(got), len(want))
	} else {
		for i := range got {
			if got[i] != want[i] {
				msg += fmt.Sprintf("byte %d is 0x%02x, expected 0x%02x", i, got[i], want[i])
				break
			}
		}
	}
	if b.prefix == 8 && len(got) == len(want) {
		other := int64(binary.LittleEndian.Uint64(got[:8]))
		if other != seq && other >= 0 && string(got) == string(b.fill(scratch, other)) {
			msg += fmt.Sprintf(" (it is the reply to token %d: out of order)", other+1)
		}
	}
	return errors.New(msg)
}

// reportProgress draws the tokens done so far (progress.go) until ctx ends.
func (b *bench) reportProgress(ctx context.Context, conns []*benchConn, done chan struct{}) {
	defer close(done)
	b.cfg.progress.run(ctx, b.start, func() int64 {
		var n int64
		for _, c := range conns {
			n += c.acked.Load()
		}
		return n
	})
}

// benchConn is one client connection of a run.
type benchConn struct {
	b     *bench
	id    int
	conn  *tls.Conn
	proto string // the wire protocol it speaks
	t2    bool   // proto is token/2
	// appendFrame appends the data frame of a token in proto.
	appendFrame func(dst, token []byte) []byte
	dec         wire.FrameDecoder // the reading side's
	hist        histogram         // written by the reading side only

	sent  atomic.Int64 // tokens written (pipeline: by the writer)
	acked atomic.Int64 // replies verified
	ring  []atomic.Int64
	wake  chan struct{} // reader -> writer: replies arrived

	mu    sync.Mutex // orders the writer's end with the reader's deadline
	wdone bool

	// token/2: the last ACK written (by the writing side; after the run, by
	// end) and the server's last ACK (by the reading side; then by end).
	ackSent int64
	peerAck uint64
}

// dialBenchConn connects connection id of a run with cfg, which offers the
// run's protocols; a token/2 connection opens its session.
func dialBenchConn(ctx context.Context, b *bench, id int, cfg *tls.Config) (*benchConn, error) {
	tc, err := dialAddr(ctx, b.cfg.addr, cfg)
	if err != nil {
		return nil, fmt.Errorf("connection %d: %w", id, err)
	}
	c := &benchConn{b: b, id: id, conn: tc, proto: protocolOf(tc.ConnectionState()), wake: make(chan struct{}, 1)}
	if err := checkProtocol(id, c.proto, b.cfg.protocols); err != nil {
		_ = tc.NetConn().Close()
		return nil, err
	}
	codec := wire.CodecFor(c.proto)
	c.t2 = c.proto == wire.ProtocolToken2
	c.appendFrame = wire.AppendToken
	if c.t2 {
		c.appendFrame = wire.AppendData
		if err := c.greet(); err != nil {
			_ = tc.NetConn().Close()
			return nil, err
		}
	}
	// A little room over the size, so that a longer reply is reported as a
	// length mismatch rather than a decoding error.
	if c.dec, err = codec.NewDecoder(b.cfg.size + 64); err != nil {
		panic(err) // the limit is positive
	}
	return c, nil
}

// endAll ends every connection of a run that went well, at once: token/2's
// clean end, then close_notify.
func endAll(conns []*benchConn) error {
	errs := make([]error, len(conns))
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			if c.t2 {
				errs[i] = c.end()
			}
			_ = c.conn.Close()
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// roundtrip sends one token, waits for its reply, and again.
func (c *benchConn) roundtrip(ctx context.Context) error {
	b := c.b
	buf := make([]byte, 0, 2*b.cfg.size+16)
	rbuf := make([]byte, 64<<10)
	scratch := make([]byte, 0, b.cfg.size)
	check := make([]byte, 0, b.cfg.size)
	frames := make([]wire.Frame, 0, 4)
	for seq := int64(0); ; seq++ {
		if b.stop.Load() || ctx.Err() != nil || b.claim(1) == 0 {
			return nil
		}
		scratch = b.fill(scratch, seq)
		buf = c.appendFrame(c.appendAck(buf[:0]), scratch)
		c.sent.Store(seq + 1)
		t0 := time.Now()
		if _, err := c.conn.Write(buf); err != nil {
			return c.ioError(ctx, "write", err)
		}
		_ = c.conn.SetReadDeadline(t0.Add(b.cfg.timeout))
		for answered := false; !answered; {
			n, err := c.conn.Read(rbuf)
			if n > 0 {
				var derr error
				frames, derr = c.dec.AppendFrames(frames[:0], rbuf[:n])
				frames, derr = c.repliesThen(frames, derr)
				if len(frames) > 0 {
					lat := time.Since(t0)
					if len(frames) > 1 {
						return fmt.Errorf("verification failed: connection %d: %d replies to token %d", c.id, len(frames), seq+1)
					}
					if err := c.check(seq, frames[0], check); err != nil {
						return err
					}
					c.hist.record(lat)
					c.acked.Store(seq + 1)
					answered = true
				}
				if derr != nil {
					return fmt.Errorf("verification failed: connection %d, reply to token %d: %w", c.id, seq+1, derr)
				}
			}
			if err != nil && !answered {
				return c.ioError(ctx, "read", err)
			}
		}
	}
}

// check verifies one reply frame.
func (c *benchConn) check(seq int64, f wire.Frame, scratch []byte) error {
	switch f.Kind {
	case wire.KindToken:
	case wire.KindRemoteClose:
		reason := ""
		if len(f.Token) > 0 {
			reason = fmt.Sprintf(" (%q)", f.Token)
		}
		return fmt.Errorf("connection %d: the server sent remoteClose%s (it is closing) with token %d unanswered", c.id, reason, seq+1)
	default: // token/2's END
		return fmt.Errorf("connection %d: the server ended its side (%v) with token %d unanswered", c.id, f.Kind, seq+1)
	}
	return c.b.verify(c.id, seq, f.Token, scratch)
}

// ioError turns a read or write error into the run's error, or nil when the
// run was aborted anyway (another connection failed).
func (c *benchConn) ioError(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	var ne net.Error
	if op == "read" && errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("connection %d: no reply to token %d within %v", c.id, c.acked.Load()+1, c.b.cfg.timeout)
	}
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("connection %d: the server closed the connection with %d replies outstanding",
			c.id, c.sent.Load()-c.acked.Load())
	}
	return fmt.Errorf("connection %d: %s: %w", c.id, op, err)
}

// pipeline keeps up to the window of tokens outstanding: a writer goroutine
// sends, this one reads and verifies.
func (c *benchConn) pipeline(ctx context.Context) error {
	c.ring = make([]atomic.Int64, c.b.cfg.window)
	werr := make(chan error, 1)
	go func() { werr <- c.writeLoop(ctx) }()
	if err := c.readLoop(ctx); err != nil {
		c.b.fail(err) // aborts the writer too (closes the connection)
		<-werr
		return err
	}
	return <-werr
}

func (c *benchConn) writeLoop(ctx context.Context) (err error) {
	b := c.b
	defer func() {
		// Tell the reader no more tokens come; wake it if it waits.
		c.mu.Lock()
		c.wdone = true
		_ = c.conn.SetReadDeadline(time.Now())
		c.mu.Unlock()
	}()
	window := int64(b.cfg.window)
	encMax := b.maxFrame()
	maxBatch := int64(max(1, writeBatchBytes/encMax))
	buf := make([]byte, 0, writeBatchBytes+encMax+16) // and an ACK
	scratch := make([]byte, 0, b.cfg.size)
	var sent int64
	for {
		if b.stop.Load() || ctx.Err() != nil {
			return nil
		}
		avail := window - (sent - c.acked.Load())
		if avail <= 0 {
			select {
			case <-c.wake:
				continue
			case <-ctx.Done():
				return nil
			}
		}
		n := b.claim(min(avail, maxBatch))
		if n == 0 {
			return nil
		}
		buf = c.appendAck(buf[:0])
		now := b.now()
		for seq := sent; seq < sent+n; seq++ {
			scratch = b.fill(scratch, seq)
			buf = c.appendFrame(buf, scratch)
			c.ring[seq%window].Store(now)
		}
		sent += n
		c.sent.Store(sent)
		if _, err := c.conn.Write(buf); err != nil {
			err = c.ioError(ctx, "write", err)
			if err != nil {
				b.fail(err) // so that the reader stops at once
			}
			return err
		}
	}
}

func (c *benchConn) readLoop(ctx context.Context) error {
	b := c.b
	window := int64(b.cfg.window)
	rbuf := make([]byte, 64<<10)
	frames := make([]wire.Frame, 0, 256)
	scratch := make([]byte, 0, b.cfg.size)
	var acked int64
	finished := func() bool { return c.wdone && acked == c.sent.Load() }
	for {
		c.mu.Lock()
		if finished() {
			c.mu.Unlock()
			return nil
		}
		deadline := time.Now().Add(b.cfg.timeout)
		_ = c.conn.SetReadDeadline(deadline)
		c.mu.Unlock()

		n, err := c.conn.Read(rbuf)
		if n > 0 {
			var derr error
			frames, derr = c.dec.AppendFrames(frames[:0], rbuf[:n])
			frames, derr = c.repliesThen(frames, derr)
			now := b.now()
			for _, f := range frames {
				if acked >= c.sent.Load() {
					return fmt.Errorf("verification failed: connection %d: a reply to no token (after %d replies)", c.id, acked)
				}
				if err := c.check(acked, f, scratch); err != nil {
					return err
				}
				c.hist.record(time.Duration(now - c.ring[acked%window].Load()))
				acked++
			}
			c.acked.Store(acked)
			select {
			case c.wake <- struct{}{}:
			default:
			}
			if derr != nil {
				return fmt.Errorf("verification failed: connection %d, reply to token %d: %w", c.id, acked+1, derr)
			}
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && time.Now().Before(deadline) {
				continue // the writer's wake-up at its end: check and read on
			}
			return c.ioError(ctx, "read", err)
		}
	}
}
