package tlsio

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"hash"

	"golang.org/x/crypto/scrypt"
)

// Encrypted PKCS #8 keys ("ENCRYPTED PRIVATE KEY", RFC 5958) with the PBES2
// scheme of PKCS #5 v2 (RFC 8018): what openssl writes by default since 1.1
// (PBKDF2 with HMAC-SHA-256 and AES-256-CBC), and with -scrypt (RFC 7914).
//
// The standard library has every primitive (crypto/pbkdf2, AES, DES, CBC)
// but not this ASN.1 glue. It is done here rather than with a module because
// the one usually suggested (github.com/youmark/pkcs8) panics on malformed
// input (an IV or ciphertext of the wrong length reaches crypto/cipher),
// does not check the padding and knows only SHA-1 and SHA-256 for PBKDF2.

var (
	oidPBES2  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidScrypt = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11591, 4, 11}

	oidHMACWithSHA1   = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
	oidHMACWithSHA224 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 8}
	oidHMACWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidHMACWithSHA384 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 10}
	oidHMACWithSHA512 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 11}

	oidAES128CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	oidAES192CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	oidAES256CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	oidDESEDE3CBC = asn1.ObjectIdentifier{1, 2, 840, 113549, 3, 7}
)

// errDecrypt means decryption gave something that is not a key: the
// passphrase is wrong (or the data corrupted; the two look the same).
var errDecrypt = errors.New("cannot decrypt (wrong passphrase?)")

// errorKind is the sentinel for an error of decryptPKCS8: ErrBadPassphrase
// when the passphrase did not decrypt the key, ErrBadPEM when the key's
// encryption is malformed or not supported.
func errorKind(err error) error {
	if errors.Is(err, errDecrypt) {
		return ErrBadPassphrase
	}
	return ErrBadPEM
}

type encryptedPrivateKeyInfo struct {
	Algorithm     pkix.AlgorithmIdentifier
	EncryptedData []byte
}

type pbes2Params struct {
	KeyDerivationFunc pkix.AlgorithmIdentifier
	EncryptionScheme  pkix.AlgorithmIdentifier
}

// pbkdf2Params is PBKDF2-params with the salt as an OCTET STRING (its
// "specified" choice, the only one in use).
type pbkdf2Params struct {
	Salt           []byte
	IterationCount int
	KeyLength      int                      `asn1:"optional"`
	PRF            pkix.AlgorithmIdentifier `asn1:"optional"`
}

type scryptParams struct {
	Salt                     []byte
	CostParameter            int
	BlockSize                int
	ParallelizationParameter int
	KeyLength                int `asn1:"optional"`
}

// pbes2Cipher is a CBC cipher of the PBES2 encryption scheme.
type pbes2Cipher struct {
	name    string
	keySize int
	block   func(key []byte) (cipher.Block, error)
}

func pbes2CipherFor(oid asn1.ObjectIdentifier) (pbes2Cipher, bool) {
	switch {
	case oid.Equal(oidAES128CBC):
		return pbes2Cipher{"AES-128-CBC", 16, aes.NewCipher}, true
	case oid.Equal(oidAES192CBC):
		return pbes2Cipher{"AES-192-CBC", 24, aes.NewCipher}, true
	case oid.Equal(oidAES256CBC):
		return pbes2Cipher{"AES-256-CBC", 32, aes.NewCipher}, true
	case oid.Equal(oidDESEDE3CBC):
		return pbes2Cipher{"DES-EDE3-CBC", 24, des.NewTripleDESCipher}, true
	}
	return pbes2Cipher{}, false
}

func prfHash(prf pkix.AlgorithmIdentifier) (func() hash.Hash, error) {
	switch oid := prf.Algorithm; {
	case len(oid) == 0 || oid.Equal(oidHMACWithSHA1): // the DEFAULT
		return sha1.New, nil
	case oid.Equal(oidHMACWithSHA224):
		return sha256.New224, nil
	case oid.Equal(oidHMACWithSHA256):
		return sha256.New, nil
	case oid.Equal(oidHMACWithSHA384):
		return sha512.New384, nil
	case oid.Equal(oidHMACWithSHA512):
		return sha512.New, nil
	default:
		return nil, fmt.Errorf("unsupported PBKDF2 pseudo-random function %v", oid)
	}
}

// unmarshalAll is asn1.Unmarshal that refuses trailing data.
func unmarshalAll(der []byte, v any, what string) error {
	rest, err := asn1.Unmarshal(der, v)
	if err != nil {
		return fmt.Errorf("malformed %s: %w", what, err)
	}
	if len(rest) != 0 {
		return fmt.Errorf("malformed %s: trailing data", what)
	}
	return nil
}

// decryptPKCS8 decrypts the DER of an ENCRYPTED PRIVATE KEY block and
// returns the DER of the PKCS #8 PrivateKeyInfo inside. Errors wrap
// errDecrypt when the passphrase does not fit (see errorKind).
func decryptPKCS8(der []byte, passphrase string) ([]byte, error) {
	var info encryptedPrivateKeyInfo
	if err := unmarshalAll(der, &info, "EncryptedPrivateKeyInfo"); err != nil {
		return nil, err
	}
	if !info.Algorithm.Algorithm.Equal(oidPBES2) {
		return nil, fmt.Errorf("unsupported encryption scheme %v: only PBES2 (PKCS #5 v2) is supported; re-encrypt the key with `openssl pkcs8 -topk8 -v2 aes-256-cbc`", info.Algorithm.Algorithm)
	}
	var params pbes2Params
	if err := unmarshalAll(info.Algorithm.Parameters.FullBytes, &params, "PBES2 parameters"); err != nil {
		return nil, err
	}

	ciph, ok := pbes2CipherFor(params.EncryptionScheme.Algorithm)
	if !ok {
		return nil, fmt.Errorf("unsupported PBES2 cipher %v (supported: AES-128/192/256-CBC, DES-EDE3-CBC)", params.EncryptionScheme.Algorithm)
	}
	var iv []byte
	if err := unmarshalAll(params.EncryptionScheme.Parameters.FullBytes, &iv, ciph.name+" IV"); err != nil {
		return nil, err
	}

	key, err := deriveKey(params.KeyDerivationFunc, passphrase, ciph.keySize)
	if err != nil {
		return nil, err
	}
	block, err := ciph.block(key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ciph.name, err)
	}
	bs := block.BlockSize()
	if len(iv) != bs {
		return nil, fmt.Errorf("%s: IV of %d bytes, want %d", ciph.name, len(iv), bs)
	}
	data := info.EncryptedData
	if len(data) == 0 || len(data)%bs != 0 {
		return nil, fmt.Errorf("%s: encrypted data of %d bytes is not a multiple of the block size", ciph.name, len(data))
	}
	plain := make([]byte, len(data))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(plain, data)

	// PKCS #7 padding: n bytes of value n, 1 <= n <= block size.
	n := int(plain[len(plain)-1])
	if n == 0 || n > bs {
		return nil, errDecrypt
	}
	for _, b := range plain[len(plain)-n:] {
		if int(b) != n {
			return nil, errDecrypt
		}
	}
	return plain[:len(plain)-n], nil
}

// Cost limits of key derivation, so that a key file cannot make building a
// configuration hang or exhaust memory. They are well above what openssl and
// Node write (PBKDF2: 2048 to 600,000 iterations; scrypt: N 16384, r 8, p 1,
// 16 MiB), and OpenSSL itself refuses scrypt above 32 MiB by default.
// scrypt's time goes with N·r·p, its memory with r·(N+p): a large p costs
// time and next to no memory (N 1024, r 8, p 6401 took 10 s in 9 MiB), so
// both are bounded. The largest of each takes about 1.6 s (PBKDF2) and
// 1.3 s (scrypt) on a 2-core VM. They are variables only so that
// FuzzEncryptedKey can fuzz within smaller ones.
var (
	maxPBKDF2Iterations        = 10_000_000
	maxScryptMemory     int64  = 256 << 20 // bytes, see scryptMemory
	maxScryptWork       uint64 = 1 << 21   // N·r·p: N 2^18 with r 8 and p 1
)

// scryptMemory is the work memory of scrypt with parameters n, r, p, all
// positive, in bytes: 128·r·N for its table V, 128·r·p for the p blocks B,
// and 256·r for its scratch XY, so 128·r·(N+p+2) (x/crypto/scrypt allocates
// exactly these). It is math.MaxInt64 when that does not fit an int64.
func scryptMemory(n, r, p int) int64 {
	const maxBytes = 1<<63 - 1
	sum := uint64(n) + uint64(p) + 2 // n, p < 2^63: no overflow
	if uint64(r) > maxBytes/128 || sum > maxBytes/(128*uint64(r)) {
		return maxBytes
	}
	return int64(128 * uint64(r) * sum)
}

// checkScryptCost refuses scrypt parameters that are not positive, whose
// work memory is over maxScryptMemory, or whose work N·r·p is over
// maxScryptWork.
func checkScryptCost(n, r, p int) error {
	if n <= 0 || r <= 0 || p <= 0 {
		return fmt.Errorf("scrypt: parameters N=%d r=%d p=%d must be positive", n, r, p)
	}
	if m := scryptMemory(n, r, p); m > maxScryptMemory {
		return fmt.Errorf("scrypt: parameters N=%d r=%d p=%d need %d MiB of work memory, more than the %d MiB allowed",
			n, r, p, (m+1<<20-1)>>20, maxScryptMemory>>20)
	}
	// Under a memory limit of 2^28 bytes or less, r·N and p are each at
	// most 2^21: no overflow.
	if w := uint64(n) * uint64(r) * uint64(p); w > maxScryptWork {
		return fmt.Errorf("scrypt: parameters N=%d r=%d p=%d need N·r·p = %d, more than the %d allowed",
			n, r, p, w, maxScryptWork)
	}
	return nil
}

// deriveKey derives the keySize-byte cipher key from passphrase with the key
// derivation function kdf (PBKDF2 or scrypt).
func deriveKey(kdf pkix.AlgorithmIdentifier, passphrase string, keySize int) ([]byte, error) {
	switch {
	case kdf.Algorithm.Equal(oidPBKDF2):
		var p pbkdf2Params
		if err := unmarshalAll(kdf.Parameters.FullBytes, &p, "PBKDF2 parameters"); err != nil {
			return nil, err
		}
		if p.IterationCount <= 0 || p.IterationCount > maxPBKDF2Iterations {
			return nil, fmt.Errorf("PBKDF2: iteration count %d out of range [1, %d]", p.IterationCount, maxPBKDF2Iterations)
		}
		if p.KeyLength != 0 && p.KeyLength != keySize {
			return nil, fmt.Errorf("PBKDF2: key length %d does not fit the cipher (%d)", p.KeyLength, keySize)
		}
		h, err := prfHash(p.PRF)
		if err != nil {
			return nil, err
		}
		key, err := pbkdf2.Key(h, passphrase, p.Salt, p.IterationCount, keySize)
		if err != nil {
			return nil, fmt.Errorf("PBKDF2: %w", err)
		}
		return key, nil
	case kdf.Algorithm.Equal(oidScrypt):
		var p scryptParams
		if err := unmarshalAll(kdf.Parameters.FullBytes, &p, "scrypt parameters"); err != nil {
			return nil, err
		}
		if p.KeyLength != 0 && p.KeyLength != keySize {
			return nil, fmt.Errorf("scrypt: key length %d does not fit the cipher (%d)", p.KeyLength, keySize)
		}
		n, r, par := p.CostParameter, p.BlockSize, p.ParallelizationParameter
		if err := checkScryptCost(n, r, par); err != nil {
			return nil, err
		}
		key, err := scrypt.Key([]byte(passphrase), p.Salt, n, r, par, keySize)
		if err != nil {
			return nil, fmt.Errorf("scrypt: %w", err)
		}
		return key, nil
	default:
		return nil, fmt.Errorf("unsupported key derivation function %v (supported: PBKDF2, scrypt)", kdf.Algorithm)
	}
}
