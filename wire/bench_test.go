package wire

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

var benchSizes = []struct {
	name string
	n    int
}{
	{"16B", 16},
	{"1KiB", 1 << 10},
	{"64KiB", 64 << 10},
	{"1MiB", 1 << 20},
}

// benchToken returns a token of n bytes: "text" has no special bytes,
// "binary" is uniformly random (about one byte in 128 needs escaping);
// "lines" is text with one byte in 16 a newline or a backslash, and
// "dense" one byte in two.
func benchToken(kind string, n int) []byte {
	r := rand.New(rand.NewPCG(uint64(n), 42))
	tok := make([]byte, n)
	for i := range tok {
		switch kind {
		case "text":
			tok[i] = " abcdefghijklmnopqrstuvwxyz.,ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[r.IntN(65)]
		case "lines":
			tok[i] = " abcdefghijklmnopqrstuvwxyz.,ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[r.IntN(65)]
			if r.IntN(16) == 0 {
				tok[i] = "\n\\"[r.IntN(2)]
			}
		case "dense":
			tok[i] = "ab\n\\"[r.IntN(4)]
		default:
			tok[i] = byte(r.Uint32())
		}
	}
	return tok
}

// BenchmarkEncode measures AppendToken into a reused buffer. Throughput is
// counted in token (unescaped) bytes.
func BenchmarkEncode(b *testing.B) {
	for _, kind := range []string{"text", "binary", "lines", "dense"} {
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("%s/%s", kind, size.name), func(b *testing.B) {
				tok := benchToken(kind, size.n)
				buf := make([]byte, 0, EncodedLen(tok))
				b.SetBytes(int64(len(tok)))
				b.ReportAllocs()
				for b.Loop() {
					buf = AppendToken(buf[:0], tok)
				}
			})
		}
	}
}

// BenchmarkDecode measures Decoder.AppendFrames on one complete frame per
// call, with a reused decoder and frame slice. Throughput is counted in token
// (unescaped) bytes.
func BenchmarkDecode(b *testing.B) {
	for _, kind := range []string{"text", "binary", "lines", "dense"} {
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("%s/%s", kind, size.name), func(b *testing.B) {
				tok := benchToken(kind, size.n)
				frame := AppendToken(nil, tok)
				d, err := NewDecoder(DefaultMaxTokenSize)
				if err != nil {
					b.Fatal(err)
				}
				frames := make([]Frame, 0, 1)
				b.SetBytes(int64(len(tok)))
				b.ReportAllocs()
				for b.Loop() {
					frames, err = d.AppendFrames(frames[:0], frame)
					if err != nil || len(frames) != 1 {
						b.Fatal(len(frames), err)
					}
				}
			})
		}
	}
}
