package tlsio

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/crypto/scrypt"
)

// tlsTestScryptKey is an ENCRYPTED PRIVATE KEY block with scrypt parameters
// n, r, p and AES-256-CBC, whose ciphertext is random (no passphrase fits):
// what a hostile key file looks like.
func tlsTestScryptKey(t *testing.T, n, r, p int) []byte {
	t.Helper()
	salt := make([]byte, 16)
	rand.Read(salt)
	params, err := asn1.Marshal(scryptParams{Salt: salt, CostParameter: n, BlockSize: r, ParallelizationParameter: p})
	if err != nil {
		t.Fatal(err)
	}
	iv, data := make([]byte, 16), make([]byte, 64)
	rand.Read(iv)
	rand.Read(data)
	kdf := pkix.AlgorithmIdentifier{Algorithm: oidScrypt, Parameters: asn1.RawValue{FullBytes: params}}
	return tlsTestPBES2PEM(t, kdf, oidAES256CBC, iv, data)
}

// TestScryptCostCaps: scrypt's work memory is 128·r·(N+p+2) bytes, not
// 128·N·r·p, and its time goes with N·r·p; parameters over either cap are
// refused before anything is derived (issue 30, and a key FuzzEncryptedKey
// found that took 10 s in 9 MiB).
func TestScryptCostCaps(t *testing.T) {
	t.Run("N=2 r=2^20 p=1 is refused", func(t *testing.T) {
		// 128·2^20·(2+1+2) = 640 MiB; 128·N·r·p said 256 MiB.
		_, _, err := parseKey(tlsTestScryptKey(t, 2, 1<<20, 1), tlsTestPassphrase)
		if !errors.Is(err, ErrBadPEM) || !strings.Contains(err.Error(), "640 MiB") {
			t.Fatalf("err = %v, want ErrBadPEM saying the 640 MiB needed", err)
		}
	})
	t.Run("boundary", func(t *testing.T) {
		for _, tc := range []struct {
			n, r, p int
			ok      bool
		}{
			{1<<21 - 3, 1, 1, true},        // exactly 256 MiB
			{1<<21 - 2, 1, 1, false},       // 128 bytes over
			{1 << 17, 8, 1<<17 - 2, false}, // 256 MiB with p large: N·r·p 2^37
			{1 << 17, 8, 1<<17 - 1, false}, // 1 KiB over
			{1 << 17, 8, 2, true},          // N·r·p exactly 2^21
			{1 << 17, 8, 3, false},         // N·r·p over, in 128 MiB
			{1 << 20, 1, 2, true},
			{1 << 20, 1, 3, false},
			{1024, 8, 6401, false}, // 10 s in 9 MiB (found by FuzzEncryptedKey)
			{2, 1 << 20, 1, false},
			{16384, 8, 1, true}, // openssl's default
			{1 << 20, 1 << 20, 1 << 20, false},
			{1 << 62, 1 << 62, 1 << 62, false}, // no overflow
			{0, 8, 1, false},
			{16384, 0, 1, false},
			{16384, 8, 0, false},
			{-16384, 8, 1, false},
		} {
			err := checkScryptCost(tc.n, tc.r, tc.p)
			if (err == nil) != tc.ok {
				t.Errorf("N=%d r=%d p=%d: err = %v, want accepted %v", tc.n, tc.r, tc.p, err, tc.ok)
			}
		}
	})
	t.Run("128·r·(N+p+2) exactly while it fits an int64", func(t *testing.T) {
		const maxInt64 = 1<<63 - 1
		for _, tc := range []struct {
			n, r, p int
			want    int64
		}{
			{16384, 8, 1, 128 * 8 * (16384 + 1 + 2)},
			{1<<56 - 4, 1, 1, 1<<63 - 128}, // the largest that fits with r = 1
			{1<<56 - 3, 1, 1, maxInt64},
			{1 << 38, 1 << 19, 1, maxInt64}, // 2^64 and some: wraps to 192 MiB in uint64
			{1, 1<<56 - 1, 1, maxInt64},
		} {
			if got := scryptMemory(tc.n, tc.r, tc.p); got != tc.want {
				t.Errorf("scryptMemory(N=%d, r=%d, p=%d) = %d, want %d", tc.n, tc.r, tc.p, got, tc.want)
			}
		}
	})
	t.Run("the formula is what scrypt allocates", func(t *testing.T) {
		// A large p, where 128·N·r·p is 12 times too much.
		const n, r, p = 16, 64, 64
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		if _, err := scrypt.Key([]byte("x"), []byte("salt"), n, r, p, 32); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		got := int64(after.TotalAlloc - before.TotalAlloc)
		want := scryptMemory(n, r, p)
		t.Logf("scrypt.Key(N=%d, r=%d, p=%d) allocated %d bytes; 128·r·(N+p+2) = %d; 128·N·r·p = %d", n, r, p, got, want, 128*n*r*p)
		if got < want*95/100 || got > want*110/100+64<<10 {
			t.Errorf("scrypt.Key(N=%d, r=%d, p=%d) allocated %d bytes, the formula says %d", n, r, p, got, want)
		}
	})
}

// TestPBES2Padding: the PKCS #7 padding of a decrypted key is n bytes of
// value n, 1 <= n <= 16; anything else is a wrong passphrase, never handed
// to the PKCS #8 parser (issue 32: a padding byte of 0 was).
func TestPBES2Padding(t *testing.T) {
	// An Ed25519 PKCS #8 key is 48 bytes, three AES blocks; with a seed
	// ending in 0 its DER ends in 0, so encrypted without padding it
	// decrypts to a valid key followed by a "padding" byte of 0.
	seed := make([]byte, ed25519.SeedSize)
	rand.Read(seed[:ed25519.SeedSize-1])
	der, err := x509.MarshalPKCS8PrivateKey(ed25519.NewKeyFromSeed(seed))
	if err != nil {
		t.Fatal(err)
	}
	if len(der) != 48 || der[47] != 0 {
		t.Fatalf("Ed25519 PKCS #8 DER of %d bytes ending in %#x, want 48 ending in 0", len(der), der[47])
	}
	pad := func(n int, b byte) []byte { return append(bytes.Clone(der), bytes.Repeat([]byte{b}, n)...) }
	for _, tc := range []struct {
		name  string
		plain []byte
		ok    bool
	}{
		{"no padding, last byte 0", der, false},
		{"16 bytes of 16", pad(16, 16), true},
		{"16 bytes of 0", pad(16, 0), false},
		{"16 bytes of 17", pad(16, 17), false},
		{"16 bytes, last 2, one before 1", append(pad(14, 16), 1, 2), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, _, err := parseKey(tlsTestEncryptPlain(t, tc.plain, tlsTestPassphrase, pbes2Cases[2], false), tlsTestPassphrase)
			if tc.ok {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if !errors.Is(err, ErrBadPassphrase) || !errors.Is(err, errDecrypt) {
				t.Fatalf("key %T, err = %v; want ErrBadPassphrase from the padding check (errDecrypt)", key, err)
			}
		})
	}
}
