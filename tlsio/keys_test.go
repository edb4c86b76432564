package tlsio

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/ecdsa"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/scrypt"
	"software.sslmate.com/src/go-pkcs12"
)

const tlsTestPassphrase = "correct horse battery staple"

// pbes2Case is one way to encrypt a PKCS #8 key with PBES2.
type pbes2Case struct {
	name   string
	prf    asn1.ObjectIdentifier // nil: HMAC-SHA-1, left out as the DEFAULT
	hash   func() hash.Hash
	scrypt bool
	cipher asn1.ObjectIdentifier
}

var pbes2Cases = []pbes2Case{
	{name: "PBKDF2-SHA1 AES-128-CBC", hash: sha1.New, cipher: oidAES128CBC},
	{name: "PBKDF2-SHA224 AES-192-CBC", prf: oidHMACWithSHA224, hash: sha256.New224, cipher: oidAES192CBC},
	{name: "PBKDF2-SHA256 AES-256-CBC", prf: oidHMACWithSHA256, hash: sha256.New, cipher: oidAES256CBC},
	{name: "PBKDF2-SHA384 DES-EDE3-CBC", prf: oidHMACWithSHA384, hash: sha512.New384, cipher: oidDESEDE3CBC},
	{name: "PBKDF2-SHA512 AES-256-CBC", prf: oidHMACWithSHA512, hash: sha512.New, cipher: oidAES256CBC},
	{name: "scrypt AES-256-CBC", scrypt: true, cipher: oidAES256CBC},
}

// tlsTestEncryptPKCS8 encrypts key as an ENCRYPTED PRIVATE KEY block with
// PBES2, written independently of decryptPKCS8 from RFC 8018 (the openssl
// cases check both against a third implementation).
func tlsTestEncryptPKCS8(t testing.TB, key crypto.PrivateKey, passphrase string, c pbes2Case) []byte {
	t.Helper()
	plain, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return tlsTestEncryptPlain(t, plain, passphrase, c, true)
}

// tlsTestEncryptPlain encrypts plain as tlsTestEncryptPKCS8 does, with its
// PKCS #7 padding when pad is set, or as it is (whole blocks) otherwise, so
// that a test can choose the padding bytes the decryption finds.
func tlsTestEncryptPlain(t testing.TB, plain []byte, passphrase string, c pbes2Case, pad bool) []byte {
	t.Helper()
	ciph, ok := pbes2CipherFor(c.cipher)
	if !ok {
		t.Fatalf("no cipher %v", c.cipher)
	}
	salt := make([]byte, 16)
	rand.Read(salt)
	var kdf pkix.AlgorithmIdentifier
	var dk []byte
	var err error
	if c.scrypt {
		dk, err = scrypt.Key([]byte(passphrase), salt, 1024, 8, 1, ciph.keySize)
		params, _ := asn1.Marshal(scryptParams{Salt: salt, CostParameter: 1024, BlockSize: 8, ParallelizationParameter: 1, KeyLength: ciph.keySize})
		kdf = pkix.AlgorithmIdentifier{Algorithm: oidScrypt, Parameters: asn1.RawValue{FullBytes: params}}
	} else {
		dk, err = pbkdf2.Key(c.hash, passphrase, salt, 2048, ciph.keySize)
		p := pbkdf2Params{Salt: salt, IterationCount: 2048}
		if c.prf != nil {
			p.PRF = pkix.AlgorithmIdentifier{Algorithm: c.prf, Parameters: asn1.NullRawValue}
		}
		params, _ := asn1.Marshal(p)
		kdf = pkix.AlgorithmIdentifier{Algorithm: oidPBKDF2, Parameters: asn1.RawValue{FullBytes: params}}
	}
	if err != nil {
		t.Fatal(err)
	}
	var block cipher.Block
	if c.cipher.Equal(oidDESEDE3CBC) {
		block, err = des.NewTripleDESCipher(dk)
	} else {
		block, err = aes.NewCipher(dk)
	}
	if err != nil {
		t.Fatal(err)
	}
	iv := make([]byte, block.BlockSize())
	rand.Read(iv)
	padded := bytes.Clone(plain)
	if pad {
		n := block.BlockSize() - len(plain)%block.BlockSize()
		padded = append(padded, bytes.Repeat([]byte{byte(n)}, n)...)
	} else if len(plain)%block.BlockSize() != 0 {
		t.Fatalf("plaintext of %d bytes: not whole blocks", len(plain))
	}
	enc := make([]byte, len(padded))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(enc, padded)
	return tlsTestPBES2PEM(t, kdf, c.cipher, iv, enc)
}

// tlsTestPBES2PEM wraps enc, encrypted with the cipher cipherOID and iv
// under a key from kdf, as an ENCRYPTED PRIVATE KEY block.
func tlsTestPBES2PEM(t testing.TB, kdf pkix.AlgorithmIdentifier, cipherOID asn1.ObjectIdentifier, iv, enc []byte) []byte {
	t.Helper()
	ivDER, _ := asn1.Marshal(iv)
	scheme, err := asn1.Marshal(pbes2Params{
		KeyDerivationFunc: kdf,
		EncryptionScheme:  pkix.AlgorithmIdentifier{Algorithm: cipherOID, Parameters: asn1.RawValue{FullBytes: ivDER}},
	})
	if err != nil {
		t.Fatal(err)
	}
	der, err := asn1.Marshal(encryptedPrivateKeyInfo{
		Algorithm:     pkix.AlgorithmIdentifier{Algorithm: oidPBES2, Parameters: asn1.RawValue{FullBytes: scheme}},
		EncryptedData: enc,
	})
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPKCS8Encrypted, Bytes: der})
}

// tlsTestEncryptLegacy encrypts key in the legacy PEM form (Proc-Type:
// 4,ENCRYPTED): PKCS #1 for RSA, SEC 1 for ECDSA.
func tlsTestEncryptLegacy(t *testing.T, key crypto.PrivateKey, passphrase string, alg x509.PEMCipher) []byte {
	t.Helper()
	var typ string
	var der []byte
	var err error
	switch k := key.(type) {
	case *rsa.PrivateKey:
		typ, der = pemPKCS1, x509.MarshalPKCS1PrivateKey(k)
	case *ecdsa.PrivateKey:
		typ = pemSEC1
		der, err = x509.MarshalECPrivateKey(k)
	default:
		t.Fatalf("key type %T", key)
	}
	if err != nil {
		t.Fatal(err)
	}
	block, err := x509.EncryptPEMBlock(rand.Reader, typ, der, []byte(passphrase), alg) //lint:ignore SA1019 the legacy form is what is tested
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(block)
}

// tlsTestPairKey checks that a built config presents the certificate of leaf
// with its key.
func tlsTestPairKey(t *testing.T, cfg *tls.Config, leaf tlsTestLeaf) {
	t.Helper()
	if len(cfg.Certificates) != 1 {
		t.Fatalf("%d certificates, want 1", len(cfg.Certificates))
	}
	c := cfg.Certificates[0]
	if !bytes.Equal(c.Certificate[0], leaf.cert.Raw) {
		t.Error("the certificate presented is not the leaf")
	}
	if !leaf.key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(c.PrivateKey.(crypto.Signer).Public()) {
		t.Error("the key presented is not the leaf's")
	}
}

// tlsTestBothConfigs builds a server and a client config from o.
func tlsTestBothConfigs(o Options) map[string]error {
	_, serr := ServerConfig(o)
	_, cerr := ClientConfig(o)
	return map[string]error{"ServerConfig": serr, "ClientConfig": cerr}
}

func TestEncryptedKey(t *testing.T) {
	ca := tlsTestNewCA(t, "keys CA", false, nil)
	for _, rsaKey := range []bool{false, true} {
		leaf := ca.issue(t, serverLeaf("localhost"), rsaKey)
		kind := "ECDSA"
		if rsaKey {
			kind = "RSA"
		}
		type encCase struct {
			name string
			key  []byte
		}
		var cases []encCase
		for _, c := range pbes2Cases {
			cases = append(cases, encCase{"PKCS8 " + c.name, tlsTestEncryptPKCS8(t, leaf.key, tlsTestPassphrase, c)})
		}
		for name, alg := range map[string]x509.PEMCipher{"AES-256-CBC": x509.PEMCipherAES256, "AES-128-CBC": x509.PEMCipherAES128, "DES-EDE3-CBC": x509.PEMCipher3DES} {
			cases = append(cases, encCase{"legacy " + name, tlsTestEncryptLegacy(t, leaf.key, tlsTestPassphrase, alg)})
		}
		for _, c := range cases {
			t.Run(kind+" "+c.name, func(t *testing.T) {
				o := Options{Key: c.key, Cert: leaf.certPEM, CA: ca.certPEM, Passphrase: tlsTestPassphrase}
				tlsTestPairKey(t, tlsTestServerConfig(t, o), leaf)
				tlsTestPairKey(t, tlsTestClientConfig(t, o), leaf)

				for _, wrong := range []string{"", "Correct horse battery staple", "x"} {
					o.Passphrase = wrong
					for side, err := range tlsTestBothConfigs(o) {
						if !errors.Is(err, ErrBadPassphrase) || errors.Is(err, ErrBadPEM) {
							t.Errorf("%s, passphrase %q: err = %v, want ErrBadPassphrase only", side, wrong, err)
						} else if wrong == "" && !strings.Contains(err.Error(), "Options.Passphrase is empty") {
							t.Errorf("%s without passphrase: err %q does not say the passphrase is missing", side, err)
						}
					}
				}
			})
		}
	}
}

// TestEncryptedKeyWrongPassphrases tries many wrong passphrases: now and then
// one decrypts to valid padding, and must still be reported as a wrong
// passphrase, not as bad PEM.
func TestEncryptedKeyWrongPassphrases(t *testing.T) {
	ca := tlsTestNewCA(t, "keys CA", false, nil)
	leaf := ca.issue(t, serverLeaf("localhost"), false)
	pkcs8Key := tlsTestEncryptPKCS8(t, leaf.key, tlsTestPassphrase, pbes2Cases[0])
	legacyKey := tlsTestEncryptLegacy(t, leaf.key, tlsTestPassphrase, x509.PEMCipherAES128)
	// The legacy form's key derivation is cheap: try it more often.
	for i := range 2000 {
		wrong := fmt.Sprintf("wrong %d", i)
		keys := map[string][]byte{"legacy": legacyKey}
		if i < 300 {
			keys["pkcs8"] = pkcs8Key
		}
		for name, key := range keys {
			_, err := ClientConfig(Options{Key: key, Cert: leaf.certPEM, Passphrase: wrong})
			if !errors.Is(err, ErrBadPassphrase) || errors.Is(err, ErrBadPEM) {
				t.Fatalf("%s, passphrase %q: err = %v, want ErrBadPassphrase only", name, wrong, err)
			}
		}
	}
}

func TestEncryptedKeyHandshake(t *testing.T) {
	ca := tlsTestNewCA(t, "keys CA", false, nil)
	server := ca.issue(t, serverLeaf("localhost"), true)
	client := ca.issue(t, clientLeaf("keys client"), false)
	sopt := Options{
		Key:         tlsTestEncryptPKCS8(t, server.key, "server secret", pbes2Cases[2]),
		Cert:        server.certPEM,
		CA:          ca.certPEM,
		RequestCert: true,
		Passphrase:  "server secret",
	}
	copt := Options{
		Key:        tlsTestEncryptLegacy(t, client.key, "client secret", x509.PEMCipherAES256),
		Cert:       client.certPEM,
		CA:         ca.certPEM,
		ServerName: "localhost",
		Passphrase: "client secret",
	}
	addr, res := tlsTestServe(t, tlsTestServerConfig(t, sopt))
	if _, err := tlsTestDialAndRead(t, addr, tlsTestClientConfig(t, copt)); err != nil {
		t.Fatalf("client: %v", err)
	}
	sr := tlsTestServerResultOf(t, res)
	if sr.err != nil || len(sr.state.PeerCertificates) == 0 || !sr.state.PeerCertificates[0].Equal(client.cert) {
		t.Fatalf("server: %v, peer certificates %v", sr.err, sr.state.PeerCertificates)
	}
}

func TestEncryptedKeyMalformed(t *testing.T) {
	ca := tlsTestNewCA(t, "keys CA", false, nil)
	leaf := ca.issue(t, serverLeaf("localhost"), false)
	good := tlsTestEncryptPKCS8(t, leaf.key, tlsTestPassphrase, pbes2Cases[2])
	block, _ := pem.Decode(good)
	var info encryptedPrivateKeyInfo
	if _, err := asn1.Unmarshal(block.Bytes, &info); err != nil {
		t.Fatal(err)
	}
	var params pbes2Params
	if _, err := asn1.Unmarshal(info.Algorithm.Parameters.FullBytes, &params); err != nil {
		t.Fatal(err)
	}
	// remarshal builds an ENCRYPTED PRIVATE KEY block after f changed the
	// structures.
	remarshal := func(f func(info *encryptedPrivateKeyInfo, params *pbes2Params)) []byte {
		i, p := info, params
		i.EncryptedData = bytes.Clone(info.EncryptedData)
		f(&i, &p)
		pd, err := asn1.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if i.Algorithm.Parameters.FullBytes != nil {
			i.Algorithm.Parameters = asn1.RawValue{FullBytes: pd}
		}
		der, err := asn1.Marshal(i)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: pemPKCS8Encrypted, Bytes: der})
	}
	ivOf := func(n int) asn1.RawValue {
		b, _ := asn1.Marshal(make([]byte, n))
		return asn1.RawValue{FullBytes: b}
	}
	// pbkdf2With is remarshal with f changing the PBKDF2 parameters.
	pbkdf2With := func(f func(k *pbkdf2Params)) []byte {
		return remarshal(func(_ *encryptedPrivateKeyInfo, p *pbes2Params) {
			var k pbkdf2Params
			if _, err := asn1.Unmarshal(p.KeyDerivationFunc.Parameters.FullBytes, &k); err != nil {
				t.Fatal(err)
			}
			f(&k)
			b, err := asn1.Marshal(k)
			if err != nil {
				t.Fatal(err)
			}
			p.KeyDerivationFunc.Parameters = asn1.RawValue{FullBytes: b}
		})
	}
	pbes1 := asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 1, 3} // pbeWithSHAAnd3-KeyTripleDES-CBC
	for _, tc := range []struct {
		name, want string
		key        []byte
	}{
		{"not DER", "malformed", pem.EncodeToMemory(&pem.Block{Type: pemPKCS8Encrypted, Bytes: []byte("garbage")})},
		{"trailing data", "trailing data", pem.EncodeToMemory(&pem.Block{Type: pemPKCS8Encrypted, Bytes: append(bytes.Clone(block.Bytes), 0)})},
		{"PKCS #12 scheme", "openssl pkcs8 -topk8", remarshal(func(i *encryptedPrivateKeyInfo, _ *pbes2Params) { i.Algorithm.Algorithm = pbes1 })},
		{"unknown cipher", "unsupported PBES2 cipher", remarshal(func(_ *encryptedPrivateKeyInfo, p *pbes2Params) {
			p.EncryptionScheme.Algorithm = asn1.ObjectIdentifier{1, 2, 3}
		})},
		{"unknown KDF", "unsupported key derivation", remarshal(func(_ *encryptedPrivateKeyInfo, p *pbes2Params) {
			p.KeyDerivationFunc.Algorithm = asn1.ObjectIdentifier{1, 2, 3}
		})},
		{"short IV", "IV of 8 bytes", remarshal(func(_ *encryptedPrivateKeyInfo, p *pbes2Params) { p.EncryptionScheme.Parameters = ivOf(8) })},
		{"long IV", "IV of 32 bytes", remarshal(func(_ *encryptedPrivateKeyInfo, p *pbes2Params) { p.EncryptionScheme.Parameters = ivOf(32) })},
		{"truncated ciphertext", "not a multiple of the block size", remarshal(func(i *encryptedPrivateKeyInfo, _ *pbes2Params) {
			i.EncryptedData = i.EncryptedData[:len(i.EncryptedData)-3]
		})},
		{"empty ciphertext", "not a multiple of the block size", remarshal(func(i *encryptedPrivateKeyInfo, _ *pbes2Params) { i.EncryptedData = nil })},
		// RFC 8018: iterationCount INTEGER (1..MAX); with 0, PBKDF2 would
		// run once.
		{"PBKDF2 iteration count 0", "iteration count 0 out of range", pbkdf2With(func(k *pbkdf2Params) { k.IterationCount = 0 })},
		{"PBKDF2 key length of another cipher", "key length 16 does not fit the cipher (32)", pbkdf2With(func(k *pbkdf2Params) { k.KeyLength = 16 })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for side, err := range tlsTestBothConfigs(Options{Key: tc.key, Cert: leaf.certPEM, Passphrase: tlsTestPassphrase}) {
				if !errors.Is(err, ErrBadPEM) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), ": key:") {
					t.Errorf("%s: err = %v, want ErrBadPEM saying %q", side, err, tc.want)
				}
			}
		})
	}
	// A key length given, that fits the cipher (openssl leaves it out): the
	// key loads.
	withLength := pbkdf2With(func(k *pbkdf2Params) { k.KeyLength = 32 })
	for side, err := range tlsTestBothConfigs(Options{Key: withLength, Cert: leaf.certPEM, Passphrase: tlsTestPassphrase}) {
		if err != nil {
			t.Errorf("%s: a PBKDF2 key length that fits the cipher: %v", side, err)
		}
	}
}

// FuzzEncryptedKey checks that no encrypted key, however malformed, makes
// building a config panic.
func FuzzEncryptedKey(f *testing.F) {
	// At the full cost limits one key takes up to 1.6 s to derive, and a
	// fuzz worker still busy a second after the run's end is reported as
	// hung (scrypt with N 1024, r 8, p 6401 was, before N·r·p had a limit):
	// fuzz within limits of a few milliseconds. The limits themselves have
	// tests of their own.
	iterations, memory, work := maxPBKDF2Iterations, maxScryptMemory, maxScryptWork
	maxPBKDF2Iterations, maxScryptMemory, maxScryptWork = 20_000, 16<<20, 1<<15
	f.Cleanup(func() { maxPBKDF2Iterations, maxScryptMemory, maxScryptWork = iterations, memory, work })
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00}, "x")
	for _, c := range pbes2Cases {
		b, _ := pem.Decode(tlsTestEncryptPKCS8(f, tlsTestKey(f, false), "p", c))
		f.Add(b.Bytes, "")
	}
	f.Fuzz(func(t *testing.T, der []byte, passphrase string) {
		key := pem.EncodeToMemory(&pem.Block{Type: pemPKCS8Encrypted, Bytes: der})
		if _, _, err := parseKey(key, passphrase+"p"); err == nil {
			return
		} else if !errors.Is(err, ErrBadPEM) && !errors.Is(err, ErrBadPassphrase) {
			t.Fatalf("err = %v, want ErrBadPEM or ErrBadPassphrase", err)
		}
	})
}

func TestLoadFilesEncryptedKey(t *testing.T) {
	ca := tlsTestNewCA(t, "keys CA", false, nil)
	leaf := ca.issue(t, serverLeaf("localhost"), false)
	dir := t.TempDir()
	for name, key := range map[string][]byte{
		"pkcs8.key":  tlsTestEncryptPKCS8(t, leaf.key, tlsTestPassphrase, pbes2Cases[2]),
		"legacy.key": tlsTestEncryptLegacy(t, leaf.key, tlsTestPassphrase, x509.PEMCipherAES256),
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, key, 0o600); err != nil {
			t.Fatal(err)
		}
		certFile := filepath.Join(dir, "leaf.crt")
		if err := os.WriteFile(certFile, leaf.certPEM, 0o644); err != nil {
			t.Fatal(err)
		}
		o, err := LoadFiles(p, certFile, "")
		if err != nil {
			t.Fatalf("%s: LoadFiles: %v", name, err)
		}
		if _, err := ServerConfig(o); !errors.Is(err, ErrBadPassphrase) {
			t.Errorf("%s without passphrase: err = %v, want ErrBadPassphrase", name, err)
		}
		o.Passphrase = tlsTestPassphrase
		tlsTestPairKey(t, tlsTestServerConfig(t, o), leaf)
	}
}

// tlsTestPFX encodes leaf (with chain) as a PKCS #12 archive.
func tlsTestPFX(t *testing.T, enc *pkcs12.Encoder, leaf tlsTestLeaf, passphrase string, chain ...*x509.Certificate) []byte {
	t.Helper()
	pfx, err := enc.Encode(leaf.key, leaf.cert, chain, passphrase)
	if err != nil {
		t.Fatal(err)
	}
	return pfx
}

func TestPFX(t *testing.T) {
	root := tlsTestNewCA(t, "pfx root", false, nil)
	inter := tlsTestNewCA(t, "pfx intermediate", false, root)
	leaf := inter.issue(t, serverLeaf("localhost"), true)
	for name, enc := range map[string]*pkcs12.Encoder{
		"Modern": pkcs12.Modern, "Modern2023": pkcs12.Modern2023, "LegacyDES": pkcs12.LegacyDES, "LegacyRC2": pkcs12.LegacyRC2,
	} {
		t.Run(name, func(t *testing.T) {
			pfx := tlsTestPFX(t, enc, leaf, tlsTestPassphrase, inter.cert, root.cert)
			o := Options{PFX: pfx, Passphrase: tlsTestPassphrase}
			cfg := tlsTestServerConfig(t, o)
			tlsTestPairKey(t, cfg, leaf)
			// The chain follows the leaf; the root is trusted.
			if c := cfg.Certificates[0].Certificate; len(c) != 3 || !bytes.Equal(c[1], inter.cert.Raw) || !bytes.Equal(c[2], root.cert.Raw) {
				t.Errorf("chain of %d certificates, want leaf, intermediate, root", len(c))
			}
			tlsTestPairKey(t, tlsTestClientConfig(t, o), leaf)

			for _, wrong := range []string{"", "wrong"} {
				o.Passphrase = wrong
				for side, err := range tlsTestBothConfigs(o) {
					if !errors.Is(err, ErrBadPassphrase) {
						t.Errorf("%s, passphrase %q: err = %v, want ErrBadPassphrase", side, wrong, err)
					}
				}
			}
		})
	}
	t.Run("Passwordless", func(t *testing.T) {
		pfx := tlsTestPFX(t, pkcs12.Passwordless, leaf, "")
		tlsTestPairKey(t, tlsTestServerConfig(t, Options{PFX: pfx}), leaf)
	})
	t.Run("leaf not first", func(t *testing.T) {
		// An archive whose first certificate is not the key's: the leaf is
		// still the one presented.
		pfx, err := pkcs12.Modern.Encode(leaf.key, inter.cert, []*x509.Certificate{leaf.cert}, tlsTestPassphrase)
		if err != nil {
			t.Fatal(err)
		}
		cfg := tlsTestServerConfig(t, Options{PFX: pfx, Passphrase: tlsTestPassphrase})
		tlsTestPairKey(t, cfg, leaf)
	})
	t.Run("no certificate of the key", func(t *testing.T) {
		pfx, err := pkcs12.Modern.Encode(leaf.key, inter.cert, nil, tlsTestPassphrase)
		if err != nil {
			t.Fatal(err)
		}
		for side, err := range tlsTestBothConfigs(Options{PFX: pfx, Passphrase: tlsTestPassphrase}) {
			if !errors.Is(err, ErrKeyMismatch) {
				t.Errorf("%s: err = %v, want ErrKeyMismatch", side, err)
			}
		}
	})
	t.Run("malformed", func(t *testing.T) {
		good := tlsTestPFX(t, pkcs12.Modern, leaf, tlsTestPassphrase)
		for name, pfx := range map[string][]byte{
			"garbage":   []byte("not a PKCS #12 archive"),
			"PEM":       leaf.certPEM,
			"truncated": good[:len(good)/2],
		} {
			for side, err := range tlsTestBothConfigs(Options{PFX: pfx, Passphrase: tlsTestPassphrase}) {
				if !errors.Is(err, ErrBadPFX) {
					t.Errorf("%s, %s: err = %v, want ErrBadPFX", name, side, err)
				}
			}
		}
	})
	t.Run("with Key or Cert", func(t *testing.T) {
		pfx := tlsTestPFX(t, pkcs12.Modern, leaf, tlsTestPassphrase)
		for _, o := range []Options{{PFX: pfx, Key: leaf.keyPEM}, {PFX: pfx, Cert: leaf.certPEM}, {PFX: pfx, Key: leaf.keyPEM, Cert: leaf.certPEM}} {
			for side, err := range tlsTestBothConfigs(o) {
				if !errors.Is(err, ErrPFXWithKeyPair) {
					t.Errorf("%s: err = %v, want ErrPFXWithKeyPair", side, err)
				}
			}
		}
	})
}

// TestPFXTrustsItsRoots: as in Node, without CA the self-signed
// certificates of a PFX verify the peer, in addition to the system roots;
// intermediates alone are not trusted.
func TestPFXTrustsItsRoots(t *testing.T) {
	root := tlsTestNewCA(t, "pfx root", false, nil)
	inter := tlsTestNewCA(t, "pfx intermediate", false, root)
	server := inter.issue(t, serverLeaf("localhost"), false, inter)
	client := inter.issue(t, clientLeaf("pfx client"), false, inter)
	tlsTestSystemRoots(t, func() (*x509.CertPool, error) { return nil, errors.New("no system roots in this test") })

	spfx := tlsTestPFX(t, pkcs12.Modern, server, "s", inter.cert, root.cert)
	scfg := tlsTestServerConfig(t, Options{PFX: spfx, Passphrase: "s", RequestCert: true})
	copt := Options{Key: client.keyPEM, Cert: client.certPEM, ServerName: "localhost"}

	t.Run("client with a PFX that holds the root", func(t *testing.T) {
		addr, res := tlsTestServe(t, scfg)
		o := copt
		o.Key, o.Cert = nil, nil
		o.PFX, o.Passphrase = tlsTestPFX(t, pkcs12.Modern, client, "c", inter.cert, root.cert), "c"
		if _, err := tlsTestDialAndRead(t, addr, tlsTestClientConfig(t, o)); err != nil {
			t.Fatalf("client: %v", err)
		}
		if sr := tlsTestServerResultOf(t, res); sr.err != nil {
			t.Fatalf("server: %v", sr.err)
		}
	})
	t.Run("client with CA", func(t *testing.T) {
		addr, res := tlsTestServe(t, scfg)
		o := copt
		o.CA = root.certPEM
		if _, err := tlsTestDialAndRead(t, addr, tlsTestClientConfig(t, o)); err != nil {
			t.Fatalf("client: %v", err)
		}
		if sr := tlsTestServerResultOf(t, res); sr.err != nil {
			t.Fatalf("server: %v", sr.err)
		}
	})
	t.Run("PFX with the intermediate only", func(t *testing.T) {
		addr, res := tlsTestServe(t, scfg)
		o := copt
		o.Key, o.Cert = nil, nil
		o.PFX, o.Passphrase = tlsTestPFX(t, pkcs12.Modern, client, "c", inter.cert), "c"
		_, err := tlsTestDialAndRead(t, addr, tlsTestClientConfig(t, o))
		var uerr x509.UnknownAuthorityError
		if !errors.As(err, &uerr) {
			t.Fatalf("client: err = %v, want x509.UnknownAuthorityError", err)
		}
		tlsTestServerResultOf(t, res)
	})
}

// TestPFXRootsNotTrustedWithCA: with CA given, the self-signed
// certificates of a server's PFX do not verify client certificates (nor a
// client's the server), unless Options.TrustPFXRoots asks for it (issue 30).
func TestPFXRootsNotTrustedWithCA(t *testing.T) {
	pfxRoot := tlsTestNewCA(t, "root inside the pfx", false, nil)
	server := pfxRoot.issue(t, serverLeaf("localhost"), false)
	intruder := pfxRoot.issue(t, clientLeaf("client of the pfx root"), false)
	clientCA := tlsTestNewCA(t, "the client CA", false, nil)
	member := clientCA.issue(t, clientLeaf("client of the CA"), false)
	spfx := tlsTestPFX(t, pkcs12.Modern, server, "s", pfxRoot.cert)
	sopt := Options{PFX: spfx, Passphrase: "s", CA: clientCA.certPEM, RequestCert: true}
	// dial connects with client's certificate, sent whatever CAs the server
	// lists in its request (crypto/tls would send none that is not from
	// one of them; an attacker's client sends it anyway), and returns the
	// server's error, else the client's.
	dial := func(t *testing.T, sopt Options, client tlsTestLeaf) error {
		t.Helper()
		cfg := tlsTestClientConfig(t, Options{Key: client.keyPEM, Cert: client.certPEM, CA: pfxRoot.certPEM, ServerName: "localhost"})
		cert := cfg.Certificates[0]
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
		addr, res := tlsTestServe(t, tlsTestServerConfig(t, sopt))
		_, err := tlsTestDialAndRead(t, addr, cfg)
		if sr := tlsTestServerResultOf(t, res); sr.err != nil {
			return sr.err
		}
		return err
	}

	t.Run("a client of the CA", func(t *testing.T) {
		if err := dial(t, sopt, member); err != nil {
			t.Fatalf("refused: %v", err)
		}
	})
	t.Run("a client of the pfx root is refused", func(t *testing.T) {
		err := dial(t, sopt, intruder)
		var uerr x509.UnknownAuthorityError
		if !errors.As(err, &uerr) {
			t.Fatalf("err = %v, want x509.UnknownAuthorityError on the server", err)
		}
	})
	t.Run("TrustPFXRoots", func(t *testing.T) {
		o := sopt
		o.TrustPFXRoots = true
		for _, c := range []tlsTestLeaf{member, intruder} {
			if err := dial(t, o, c); err != nil {
				t.Fatalf("%s refused: %v", c.cert.Subject.CommonName, err)
			}
		}
	})
	t.Run("client side", func(t *testing.T) {
		// A client's PFX with its own root and a CA of another: the server
		// of the PFX root is not trusted.
		cpfx := tlsTestPFX(t, pkcs12.Modern, intruder, "c", pfxRoot.cert)
		copt := Options{PFX: cpfx, Passphrase: "c", CA: clientCA.certPEM, ServerName: "localhost"}
		_, _, err := tlsTestHandshake(t, Options{Key: server.keyPEM, Cert: server.certPEM}, copt)
		var uerr x509.UnknownAuthorityError
		if !errors.As(err, &uerr) {
			t.Fatalf("err = %v, want x509.UnknownAuthorityError", err)
		}
		copt.TrustPFXRoots = true
		if _, _, err := tlsTestHandshake(t, Options{Key: server.keyPEM, Cert: server.certPEM}, copt); err != nil {
			t.Fatalf("with TrustPFXRoots: %v", err)
		}
	})
}

// TestOpenSSLKeys reads keys and archives made by the openssl command, the
// way token-server users make them.
func TestOpenSSLKeys(t *testing.T) {
	openssl := tlsTestOpenSSL(t)
	ca := tlsTestNewCA(t, "openssl CA", false, nil)
	dir := t.TempDir()
	for _, rsaKey := range []bool{true, false} {
		leaf := ca.issue(t, serverLeaf("localhost"), rsaKey)
		kind := "ec"
		if rsaKey {
			kind = "rsa"
		}
		plain := filepath.Join(dir, kind+".key")
		crt := filepath.Join(dir, kind+".crt")
		if err := os.WriteFile(plain, leaf.keyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(crt, leaf.certPEM, 0o644); err != nil {
			t.Fatal(err)
		}
		pass := "pass:" + tlsTestPassphrase
		type opensslCase struct {
			name     string
			args     []string
			pfx      bool
			wantType string
		}
		cases := []opensslCase{
			{name: "pkcs8 default", args: []string{"pkcs8", "-topk8", "-in", plain, "-passout", pass}, wantType: pemPKCS8Encrypted},
			{name: "pkcs8 aes-128 hmacWithSHA512", args: []string{"pkcs8", "-topk8", "-v2", "aes-128-cbc", "-v2prf", "hmacWithSHA512", "-in", plain, "-passout", pass}, wantType: pemPKCS8Encrypted},
			{name: "pkcs8 des3", args: []string{"pkcs8", "-topk8", "-v2", "des3", "-in", plain, "-passout", pass}, wantType: pemPKCS8Encrypted},
			{name: "pkcs8 scrypt", args: []string{"pkcs8", "-topk8", "-scrypt", "-in", plain, "-passout", pass}, wantType: pemPKCS8Encrypted},
			{name: "pkcs12 default", args: []string{"pkcs12", "-export", "-inkey", plain, "-in", crt, "-passout", pass}, pfx: true},
			{name: "pkcs12 3DES SHA-1 MAC", args: []string{"pkcs12", "-export", "-inkey", plain, "-in", crt, "-keypbe", "PBE-SHA1-3DES", "-certpbe", "PBE-SHA1-3DES", "-macalg", "sha1", "-passout", pass}, pfx: true},
		}
		if rsaKey {
			cases = append(cases, opensslCase{name: "traditional aes256", args: []string{"rsa", "-traditional", "-aes256", "-in", plain, "-passout", pass}, wantType: pemPKCS1})
		} else {
			cases = append(cases, opensslCase{name: "traditional aes128", args: []string{"ec", "-aes128", "-in", plain, "-passout", pass}, wantType: pemSEC1})
		}
		for _, c := range cases {
			t.Run(kind+" "+c.name, func(t *testing.T) {
				out := filepath.Join(t.TempDir(), "out")
				tlsTestRun(t, dir, openssl, append(c.args, "-out", out)...)
				data, err := os.ReadFile(out)
				if err != nil {
					t.Fatal(err)
				}
				o := Options{Passphrase: tlsTestPassphrase}
				if c.pfx {
					o.PFX = data
				} else {
					if got := pemTypes(data); len(got) != 1 || got[0] != c.wantType {
						t.Fatalf("openssl wrote %v, want one %s", got, c.wantType)
					}
					o.Key, o.Cert = data, leaf.certPEM
				}
				tlsTestPairKey(t, tlsTestServerConfig(t, o), leaf)
				o.Passphrase = "wrong"
				for side, err := range tlsTestBothConfigs(o) {
					if !errors.Is(err, ErrBadPassphrase) {
						t.Errorf("%s with a wrong passphrase: err = %v, want ErrBadPassphrase", side, err)
					}
				}
			})
		}
		t.Run(kind+" pkcs8 v1 (PKCS #12 PBE) is refused clearly", func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			tlsTestRun(t, dir, openssl, "pkcs8", "-topk8", "-v1", "PBE-SHA1-3DES", "-in", plain, "-passout", pass, "-out", out)
			data, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ServerConfig(Options{Key: data, Cert: leaf.certPEM, Passphrase: tlsTestPassphrase})
			if !errors.Is(err, ErrBadPEM) || !strings.Contains(err.Error(), "openssl pkcs8 -topk8 -v2 aes-256-cbc") {
				t.Errorf("err = %v, want ErrBadPEM with the openssl command that re-encrypts the key", err)
			}
		})
	}
}
