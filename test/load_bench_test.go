package test

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
	"github.com/tokenserver/tokenserver/wire"
)

// BenchmarkServerLoad measures what the server spends per token on bulk
// loads: pipelined tokens of one size on one connection, over token/1 and
// token/2, with the server echoing each token (OnTokens, SendBatch) or
// only reading it (sink: OnTokens counts the bytes), the tokens given to
// the callback or lent (/lent: ServerOptions.LendTokens). The load generator is
// plain crypto/tls in the same process and allocates nothing per token, so
// allocs/op and B/op are the server's per token (allocs/tok is allocs/op
// unrounded); gcs/Ktok is the garbage collections per 1,000 tokens
// (runtime.MemStats), which the allocations drive. Wall-clock figures on a shared machine are noise: compare
// allocations, and take speeds only as ratios of runs alternated in one
// session.
func BenchmarkServerLoad(b *testing.B) {
	for _, proto := range []string{wire.ProtocolToken1, wire.ProtocolToken2} {
		for _, size := range []int{16, 1 << 10, 64 << 10, 1 << 20} {
			for _, echo := range []bool{true, false} {
				for _, lend := range []bool{false, true} {
					mode := "echo"
					if !echo {
						mode = "sink"
					}
					spec := loadSpec{proto: proto, size: size, echo: echo}
					if lend {
						mode += "/lent"
						spec.opts = func(o *actors.ServerOptions) { o.LendTokens = true }
					}
					b.Run(fmt.Sprintf("%s/%s/%s", proto, byteSize(size), mode), func(b *testing.B) {
						serverLoad(b, spec)
					})
				}
			}
		}
	}
}

// loadSpec is one load of BenchmarkServerLoad.
type loadSpec struct {
	proto string
	size  int
	echo  bool
	opts  func(*actors.ServerOptions) // changes to the server's options
}

// serverLoad runs b.N tokens of spec through a server of its own.
func serverLoad(b *testing.B, spec loadSpec) {
	var got atomic.Int64
	opts := actors.ServerOptions{
		OnTokens: func(toks [][]byte, c *actors.Connection) {
			got.Add(int64(len(toks)))
			if spec.echo {
				c.SendBatch(toks)
			}
		},
	}
	if spec.opts != nil {
		spec.opts(&opts)
	}
	addr, cfg, _ := loadServer(b, opts)
	cfg.NextProtos = []string{spec.proto}
	c := dialAll(b, addr, cfg, 1)[0]
	tok := make([]byte, spec.size)
	r := mrand.New(mrand.NewPCG(uint64(spec.size), 7))
	for i := range tok {
		tok[i] = byte(r.Uint32()) // about one byte in 128 escaped in token/1
	}
	gen := newLoadGen(b, c, spec.proto, tok)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	gcs, mallocs := ms.NumGC, ms.Mallocs
	b.ReportAllocs()
	b.SetBytes(int64(spec.size))
	b.ResetTimer()
	if spec.echo {
		gen.echo(b, b.N)
	} else {
		gen.sink(b, b.N, &got)
	}
	b.StopTimer()
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.NumGC-gcs)*1000/float64(b.N), "gcs/Ktok")
	b.ReportMetric(float64(ms.Mallocs-mallocs)/float64(b.N), "allocs/tok")
}

// loadServer starts a server with opts on loopback and returns its address,
// a client TLS configuration for it, and the server.
func loadServer(b testing.TB, opts actors.ServerOptions) (string, *tls.Config, *actors.Server) {
	b.Helper()
	certs := benchCerts(b)
	up := make(chan struct{})
	opts.Host, opts.TLS = "127.0.0.1", certs.ServerOptions()
	opts.OnConnect = func() { close(up) }
	srv, err := actors.NewServer(opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { shutdown(b, srv.Shutdown) })
	waitClosed(b, up, "server listening")
	cfg, err := tlsio.ClientConfig(certs.ClientOptions())
	if err != nil {
		b.Fatal(err)
	}
	return srv.Addr().String(), cfg, srv
}

var benchCertsOnce struct {
	certs *tlsio.DevCerts
	err   error
	done  atomic.Bool
}

// benchCerts returns one set of development certificates for every load.
func benchCerts(b testing.TB) *tlsio.DevCerts {
	if !benchCertsOnce.done.Load() {
		benchCertsOnce.certs, benchCertsOnce.err = tlsio.GenerateDevCerts()
		benchCertsOnce.done.Store(true)
	}
	if benchCertsOnce.err != nil {
		b.Fatal(benchCertsOnce.err)
	}
	return benchCertsOnce.certs
}

// loadGen is the load generator of one connection: it writes the frames of
// one token in batches and counts what comes back, acknowledging the
// replies on token/2 as a client does.
type loadGen struct {
	c      *tls.Conn
	token2 bool
	frame  []byte // one token's frame
	batch  []byte // batchOf frames
	per    int    // frames in batch
}

// loadWindow is the most bytes of frames the generator has outstanding.
const loadWindow = 4 << 20

func newLoadGen(b *testing.B, c *tls.Conn, proto string, tok []byte) *loadGen {
	g := &loadGen{c: c, token2: proto == wire.ProtocolToken2}
	if g.token2 {
		openToken2(b, c)
		g.frame = wire.AppendData(nil, tok)
	} else {
		if p := c.ConnectionState().NegotiatedProtocol; p != "" && p != proto {
			b.Fatalf("negotiated %q, want %q", p, proto)
		}
		g.frame = wire.AppendToken(nil, tok)
	}
	g.per = max(1, min(100, (64<<10)/len(g.frame)))
	g.batch = bytes.Repeat(g.frame, g.per)
	return g
}

// openToken2 opens a new token/2 session on c: HELLO, then WELCOME.
func openToken2(tb testing.TB, c *tls.Conn) {
	tb.Helper()
	var id wire.SessionID
	_, _ = rand.Read(id[:])
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(wire.AppendHello(nil, wire.Hello{Session: id, First: 1})); err != nil {
		tb.Fatal(err)
	}
	if _, err := wire.ReadWelcome(c); err != nil {
		tb.Fatal(err)
	}
	_ = c.SetDeadline(time.Time{})
}

// write writes n frames, taking a slot of slots before each batch; the
// reader gives slots back as replies come.
func (g *loadGen) write(n int, slots chan struct{}, werr chan<- error) {
	for sent := 0; sent < n; sent += g.per {
		if slots != nil {
			slots <- struct{}{}
		}
		k := min(g.per, n-sent)
		if _, err := g.c.Write(g.batch[:k*len(g.frame)]); err != nil {
			werr <- err
			return
		}
	}
	werr <- nil
}

// echo sends n tokens and waits for their n replies, with at most
// loadWindow bytes outstanding.
func (g *loadGen) echo(b *testing.B, n int) {
	slots := make(chan struct{}, max(1, loadWindow/len(g.batch)))
	werr := make(chan error, 1)
	go g.write(n, slots, werr)
	rbuf := make([]byte, 64<<10)
	var fc frameCounter
	got, credited := 0, 0
	for got < n {
		_ = g.c.SetReadDeadline(time.Now().Add(30 * time.Second))
		k, err := g.c.Read(rbuf)
		var replies int
		if g.token2 {
			replies = fc.feed(rbuf[:k])
			if replies > 0 {
				// The replies are the server's data frames 1 to got.
				if _, werr := g.c.Write(wire.AppendAck(nil, uint64(got+replies))); werr != nil {
					b.Fatal(werr)
				}
			}
		} else {
			replies = bytes.Count(rbuf[:k], []byte{'\n'})
		}
		got += replies
		for ; got-credited >= g.per || (got == n && credited < got); credited += g.per {
			<-slots
		}
		if err != nil && got < n {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			b.Fatal(err)
		}
	}
	if err := <-werr; err != nil {
		b.Fatal(err)
	}
}

// sink sends n tokens and waits until the server has taken them (got),
// reading and dropping what the server writes (token/2's ACKs).
func (g *loadGen) sink(b *testing.B, n int, got *atomic.Int64) {
	start := got.Load()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(io.Discard, g.c)
	}()
	werr := make(chan error, 1)
	g.write(n, nil, werr)
	if err := <-werr; err != nil {
		b.Fatal(err)
	}
	stop := time.Now().Add(30 * time.Second)
	for got.Load()-start < int64(n) {
		if time.Now().After(stop) {
			b.Fatalf("the server took %d tokens of %d", got.Load()-start, n)
		}
		time.Sleep(100 * time.Microsecond)
	}
	b.StopTimer()
	_ = g.c.NetConn().(*net.TCPConn).CloseRead()
	_ = g.c.Close()
	<-done
}

// frameCounter walks token/2 frames across reads without keeping them,
// and counts the DATA frames.
type frameCounter struct {
	hdr  []byte // a header split across reads
	skip int    // payload bytes of the frame in progress still to come
	typ  wire.FrameType
}

// feed walks b and returns how many DATA frames ended in it.
func (fc *frameCounter) feed(b []byte) (data int) {
	for len(b) > 0 {
		if fc.skip > 0 {
			k := min(fc.skip, len(b))
			fc.skip -= k
			b = b[k:]
			if fc.skip == 0 && fc.typ == wire.TypeData {
				data++
			}
			continue
		}
		fc.hdr = append(fc.hdr, b[0])
		b = b[1:]
		if len(fc.hdr) < 2 {
			continue
		}
		n, k := binary.Uvarint(fc.hdr[1:])
		if k == 0 {
			continue
		}
		fc.typ, fc.skip, fc.hdr = wire.FrameType(fc.hdr[0]), int(n), fc.hdr[:0]
		if fc.skip == 0 && fc.typ == wire.TypeData {
			data++
		}
	}
	return data
}
