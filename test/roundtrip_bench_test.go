package test

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/wire"
)

// BenchmarkServerRoundTrip measures what the server spends per round trip
// of one 64-byte token on one connection, over token/1 and token/2: the
// load generator (plain crypto/tls in this process, allocating nothing per
// round trip) writes a token and waits for its echo, and on token/2 its
// ACK of the echo rides with the next token, as a client's does. So
// allocs/op and B/op are the server's per round trip; that, not the
// wall-clock time, is what to compare between the two protocols here.
func BenchmarkServerRoundTrip(b *testing.B) {
	for _, proto := range []string{wire.ProtocolToken1, wire.ProtocolToken2} {
		b.Run(proto, func(b *testing.B) { serverRoundTrip(b, proto) })
	}
}

func serverRoundTrip(b *testing.B, proto string) {
	addr, cfg, _ := loadServer(b, actors.ServerOptions{
		OnTokens: func(toks [][]byte, c *actors.Connection) { c.SendBatch(toks) },
	})
	cfg.NextProtos = []string{proto}
	c := dialAll(b, addr, cfg, 1)[0]
	tok := bytes.Repeat([]byte{'t'}, 64)
	token2 := proto == wire.ProtocolToken2
	var frame []byte
	if token2 {
		openToken2(b, c)
		frame = wire.AppendData(nil, tok)
	} else {
		frame = wire.AppendToken(nil, tok)
	}
	out := make([]byte, 0, 64)
	rbuf := make([]byte, 4<<10)
	var fc frameCounter
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mallocs := ms.Mallocs
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		out = out[:0]
		if token2 && i > 0 {
			out = wire.AppendAck(out, uint64(i)) // the echoes 1 to i came
		}
		out = append(out, frame...)
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(out); err != nil {
			b.Fatal(err)
		}
		for got := 0; got == 0; {
			k, err := c.Read(rbuf)
			if err != nil {
				b.Fatal(fmt.Errorf("round trip %d: %w", i, err))
			}
			if token2 {
				got = fc.feed(rbuf[:k])
			} else {
				got = bytes.Count(rbuf[:k], []byte{'\n'})
			}
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.Mallocs-mallocs)/float64(b.N), "allocs/rt")
}
