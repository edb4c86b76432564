package flowcontrol

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
	"github.com/tokenserver/tokenserver/wire"
)

// deadline bounds every wait for an event in these tests.
const deadline = 20 * time.Second

// mib formats a byte count in MiB for the logs.
func mib(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// wait returns the next value of ch, failing the test after the deadline.
func wait[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(deadline):
		t.Fatalf("timed out after %v waiting for %s", deadline, what)
		panic("unreachable")
	}
}

// waitUntil polls cond every few milliseconds until it holds, failing the
// test after the deadline. It is for counters that several goroutines move;
// single events have channels.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %v waiting until %s", deadline, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// put sends v on ch without ever blocking the caller (an actor's callback):
// ch is sized for the test, and a full channel is a test bug reported by the
// missing value.
func put[T any](ch chan<- T, v T) {
	select {
	case ch <- v:
	default:
	}
}

// newCerts returns fresh development certificates (a CA, a server and a
// client certificate).
func newCerts(t testing.TB) *tlsio.DevCerts {
	t.Helper()
	c, err := tlsio.GenerateDevCerts()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newSystem returns an actor system shut down once the test is over, after
// the servers and clients registered later (cleanups run last-in first-out).
func newSystem(t testing.TB) *actor.ActorSystem {
	sys := actors.NewQuietSystem()
	t.Cleanup(sys.Shutdown)
	return sys
}

// startServer starts a server on 127.0.0.1, port 0, with the options tune
// sets, waits until it listens and shuts it down when the test ends. Its
// OnConnect is taken.
func startServer(t testing.TB, certs *tlsio.DevCerts, sys *actor.ActorSystem, tune func(*actors.ServerOptions)) (*actors.Server, string) {
	t.Helper()
	up := make(chan struct{}, 1)
	errs := make(chan error, 1)
	o := actors.ServerOptions{
		Host: "127.0.0.1", TLS: certs.ServerOptions(),
		Runtime: actors.Runtime{System: sys},
		OnError: func(err error) { put(errs, err) },
	}
	if tune != nil {
		tune(&o)
	}
	o.OnConnect = func() { put(up, struct{}{}) }
	srv, err := actors.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, "server", srv.Shutdown) })
	select {
	case <-up:
	case err := <-errs:
		t.Fatalf("server failed to listen: %v", err)
	case <-time.After(deadline):
		t.Fatal("timed out waiting for the server to listen")
	}
	return srv, srv.Addr().String()
}

// mustPort returns the port of a host:port address.
func mustPort(t testing.TB, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// shutdown ends a server or client within the deadline.
func shutdown(t testing.TB, what string, f func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	if err := f(ctx); err != nil {
		t.Errorf("%s shutdown: %v", what, err)
	}
}

// dialRaw opens a plain crypto/tls connection with the client certificate,
// without any actor: the peer the server sees is exactly what the test does
// with this socket. It is closed when the test ends.
func dialRaw(t testing.TB, certs *tlsio.DevCerts, addr string) *tls.Conn {
	t.Helper()
	cfg, err := tlsio.ClientConfig(certs.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	c, err := tlsio.Dial(ctx, addr, cfg, tlsio.DialConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// makeToken returns token number id of size bytes (size >= 8): id in its
// first 8 bytes, then bytes drawn from a generator seeded by id, so that
// every token has newlines and backslashes to escape and can be checked byte
// for byte from its number alone.
func makeToken(id uint64, size int) []byte {
	tok := make([]byte, size)
	binary.BigEndian.PutUint64(tok, id)
	rng := rand.New(rand.NewPCG(id, 0x11f1))
	for i := 8; i < size; i += 8 {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], rng.Uint64())
		copy(tok[i:], b[:])
	}
	return tok
}

// tokenID returns the number makeToken put in tok, and whether tok is
// exactly the token makeToken makes for it.
func tokenID(tok []byte) (uint64, bool) {
	if len(tok) < 8 {
		return 0, false
	}
	id := binary.BigEndian.Uint64(tok)
	want := makeToken(id, len(tok))
	return id, string(want) == string(tok)
}

// readTokens reads r and passes every token decoded to each, in order, until
// each returns false or the reading ends. It returns the error that ended
// the reading (nil for a clean EOF or when each stopped it) and the bytes of
// a frame cut short at the end. pace, if set, is called before each read (a
// slow reader sleeps there).
func readTokens(r io.Reader, bufSize int, pace func(), each func(tok []byte) bool) (partial int, err error) {
	dec, derr := wire.NewDecoder(wire.DefaultMaxTokenSize)
	if derr != nil {
		return 0, derr
	}
	buf := make([]byte, bufSize)
	var frames []wire.Frame
	for {
		if pace != nil {
			pace()
		}
		n, rerr := r.Read(buf)
		if n > 0 {
			frames, derr = dec.AppendFrames(frames[:0], buf[:n])
			for _, f := range frames {
				if f.Kind == wire.KindToken && !each(f.Token) {
					return 0, nil
				}
			}
			if derr != nil {
				return dec.Buffered(), derr
			}
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				rerr = nil
			}
			return dec.Buffered(), rerr
		}
	}
}

// heapSampler records the peaks of the heap in use (HeapInuse), of the
// objects not yet collected (HeapAlloc), and of the live heap as the last GC
// marked it (runtime/metrics /gc/heap/live:bytes: what HeapAlloc would be
// without garbage) while it runs, from a baseline taken after a GC.
type heapSampler struct {
	base                           runtime.MemStats
	baseLive                       uint64
	mu                             sync.Mutex
	peakInuse, peakAlloc, peakLive uint64
	stop, done                     chan struct{}
}

// liveHeap returns the heap marked live by the last GC.
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// startHeapSampler takes the baseline and samples every interval until Stop.
func startHeapSampler(interval time.Duration) *heapSampler {
	h := &heapSampler{stop: make(chan struct{}), done: make(chan struct{})}
	runtime.GC()
	runtime.ReadMemStats(&h.base)
	h.baseLive = liveHeap()
	h.peakInuse, h.peakAlloc, h.peakLive = h.base.HeapInuse, h.base.HeapAlloc, h.baseLive
	go func() {
		defer close(h.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			h.sample()
			select {
			case <-tick.C:
			case <-h.stop:
				return
			}
		}
	}()
	return h
}

func (h *heapSampler) sample() {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	live := liveHeap()
	h.mu.Lock()
	h.peakInuse = max(h.peakInuse, m.HeapInuse)
	h.peakAlloc = max(h.peakAlloc, m.HeapAlloc)
	h.peakLive = max(h.peakLive, live)
	h.mu.Unlock()
}

// heapFigures are what a heapSampler measured.
type heapFigures struct {
	BaseInuse, PeakInuse, BaseAlloc, PeakAlloc, BaseLive, PeakLive uint64
}

// Growth is the peak HeapInuse over the baseline.
func (f heapFigures) Growth() uint64 { return f.PeakInuse - min(f.BaseInuse, f.PeakInuse) }

// LiveGrowth is the peak live heap over the baseline.
func (f heapFigures) LiveGrowth() uint64 { return f.PeakLive - min(f.BaseLive, f.PeakLive) }

func (f heapFigures) String() string {
	return fmt.Sprintf("HeapInuse %s -> peak %s (+%s), HeapAlloc %s -> peak %s, live heap %s -> peak %s (+%s)",
		mib(f.BaseInuse), mib(f.PeakInuse), mib(f.Growth()), mib(f.BaseAlloc), mib(f.PeakAlloc),
		mib(f.BaseLive), mib(f.PeakLive), mib(f.LiveGrowth()))
}

// Stop ends the sampling and returns the figures.
func (h *heapSampler) Stop() heapFigures {
	close(h.stop)
	<-h.done
	h.sample()
	h.mu.Lock()
	defer h.mu.Unlock()
	return heapFigures{BaseInuse: h.base.HeapInuse, PeakInuse: h.peakInuse,
		BaseAlloc: h.base.HeapAlloc, PeakAlloc: h.peakAlloc, BaseLive: h.baseLive, PeakLive: h.peakLive}
}

// dropLog collects the tokens reported by OnDropped, by reason.
type dropLog struct {
	mu        sync.Mutex
	notSent   []uint64
	maybeSent []uint64
	other     []error
}

// add records one OnDropped report of numbered tokens.
func (d *dropLog) add(toks [][]byte, reason error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, tok := range toks {
		id, ok := tokenID(tok)
		switch {
		case !ok:
			d.other = append(d.other, fmt.Errorf("dropped token is not intact (%d bytes): %w", len(tok), reason))
		case errors.Is(reason, actors.ErrMaybeSent):
			d.maybeSent = append(d.maybeSent, id)
		case errors.Is(reason, actors.ErrNotSent):
			d.notSent = append(d.notSent, id)
		default:
			d.other = append(d.other, reason)
		}
	}
}

// counts returns how many tokens were reported not sent and maybe sent.
func (d *dropLog) counts() (notSent, maybeSent int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.notSent), len(d.maybeSent)
}
