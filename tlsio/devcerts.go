package tlsio

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// DevCerts is a set of development certificates generated in memory by
// [GenerateDevCerts]: a CA, a server certificate and a client certificate
// signed by it, and their private keys. All fields are PEM: certificates as
// CERTIFICATE blocks, keys as PKCS #8 PRIVATE KEY blocks, as node's tls
// module reads them.
//
// They are meant for development and tests only.
type DevCerts struct {
	CACert, CAKey         []byte // the CA, which signed the two others
	ServerCert, ServerKey []byte // the server certificate and its key
	ClientCert, ClientKey []byte // the client certificate and its key
}

// Names of the development certificates.
const (
	devCAName     = "tokenserver development CA"
	devServerName = "tokenserver server"
	devClientName = "tokenserver client"
)

// GenerateDevCerts generates a fresh set of development certificates, all
// ECDSA P-256, valid from one hour ago until one year from now:
//
//   - a CA (may sign leaf certificates only),
//   - a server certificate (ExtKeyUsageServerAuth) for localhost, 127.0.0.1
//     and ::1 plus hosts: IP addresses become IP SANs, anything else a DNS
//     SAN (an IPv6 address may be given in brackets),
//   - a client certificate (ExtKeyUsageClientAuth) with common name
//     "tokenserver client".
//
// Nothing is written to disk; see [DevCerts.WriteFiles].
func GenerateDevCerts(hosts ...string) (*DevCerts, error) {
	dnsNames := []string{"localhost"}
	ips := []net.IP{net.IPv4(127, 0, 0, 1).To4(), net.IPv6loopback}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
			h = h[1 : len(h)-1]
		}
		if h == "" {
			return nil, errors.New("tlsio: generate dev certs: empty host name")
		}
		if ip := net.ParseIP(h); ip != nil {
			if v4 := ip.To4(); v4 != nil {
				ip = v4
			}
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
			continue
		}
		h = strings.ToLower(h)
		if !slices.Contains(dnsNames, h) {
			dnsNames = append(dnsNames, h)
		}
	}

	now := time.Now()
	notBefore, notAfter := now.Add(-time.Hour), now.AddDate(1, 0, 0)

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("tlsio: generate dev CA key: %w", err)
	}
	caTmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: devCAName, Organization: []string{"tokenserver"}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	caDER, err := createCert(caTmpl, caTmpl, caKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("tlsio: generate dev CA: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("tlsio: generate dev CA: %w", err)
	}

	serverCert, serverKey, err := issueLeaf(ca, caKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: devServerName, Organization: []string{"tokenserver"}},
		NotBefore:   notBefore,
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    dnsNames,
		IPAddresses: ips,
	})
	if err != nil {
		return nil, fmt.Errorf("tlsio: generate dev server certificate: %w", err)
	}
	clientCert, clientKey, err := issueLeaf(ca, caKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: devClientName, Organization: []string{"tokenserver"}},
		NotBefore:   notBefore,
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, fmt.Errorf("tlsio: generate dev client certificate: %w", err)
	}
	caKeyPEM, err := keyPEM(caKey)
	if err != nil {
		return nil, fmt.Errorf("tlsio: generate dev CA: %w", err)
	}
	return &DevCerts{
		CACert:     certPEM(caDER),
		CAKey:      caKeyPEM,
		ServerCert: serverCert,
		ServerKey:  serverKey,
		ClientCert: clientCert,
		ClientKey:  clientKey,
	}, nil
}

// ServerOptions returns server Options for these certificates: the server
// key and certificate, the CA to verify clients against, and RequestCert, so
// that clients must present a certificate signed by the CA (mutual TLS).
// The slices are copies.
func (d *DevCerts) ServerOptions() Options {
	return Options{
		Key:         bytes.Clone(d.ServerKey),
		Cert:        bytes.Clone(d.ServerCert),
		CA:          bytes.Clone(d.CACert),
		RequestCert: true,
	}
}

// ClientOptions returns client Options for these certificates: the client
// key and certificate, and the CA to verify the server against. The slices
// are copies.
func (d *DevCerts) ClientOptions() Options {
	return Options{
		Key:  bytes.Clone(d.ClientKey),
		Cert: bytes.Clone(d.ClientCert),
		CA:   bytes.Clone(d.CACert),
	}
}

// Names of the files written by WriteFiles.
var devFiles = []struct {
	name string
	mode fs.FileMode
	data func(*DevCerts) []byte
}{
	{"ca.crt", 0o644, func(d *DevCerts) []byte { return d.CACert }},
	{"ca.key", 0o600, func(d *DevCerts) []byte { return d.CAKey }},
	{"server.crt", 0o644, func(d *DevCerts) []byte { return d.ServerCert }},
	{"server.key", 0o600, func(d *DevCerts) []byte { return d.ServerKey }},
	{"client.crt", 0o644, func(d *DevCerts) []byte { return d.ClientCert }},
	{"client.key", 0o600, func(d *DevCerts) []byte { return d.ClientKey }},
}

// WriteFiles writes the certificates and keys to dir as ca.crt, ca.key,
// server.crt, server.key, client.crt and client.key: keys with mode 0600,
// certificates with mode 0644 (set explicitly, whatever the umask). dir is
// created (mode 0755) if missing.
//
// Without force, WriteFiles refuses, before writing anything, if any of the
// six files already exists; the error wraps fs.ErrExist and names the file.
// With force, existing files are replaced (each one atomically, through a
// temporary file renamed over it; a symbolic link is replaced, not
// followed).
func (d *DevCerts) WriteFiles(dir string, force bool) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("tlsio: write dev certs: %w", err)
	}
	if !force {
		for _, f := range devFiles {
			p := filepath.Join(dir, f.name)
			if _, err := os.Lstat(p); err == nil {
				return fmt.Errorf("tlsio: write dev certs: %s: %w (use force to overwrite)", p, fs.ErrExist)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("tlsio: write dev certs: %w", err)
			}
		}
	}
	for _, f := range devFiles {
		p := filepath.Join(dir, f.name)
		var err error
		if force {
			err = replaceFile(p, f.data(d), f.mode)
		} else {
			err = createFile(p, f.data(d), f.mode)
		}
		if err != nil {
			return fmt.Errorf("tlsio: write dev certs: %w", err)
		}
	}
	return nil
}

// createFile writes a new file; it fails (wrapping fs.ErrExist) if p exists.
func createFile(p string, data []byte, mode fs.FileMode) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	return writeAndClose(f, data, mode)
}

// replaceFile writes data to a temporary file in p's directory and renames
// it over p.
func replaceFile(p string, data []byte, mode fs.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if err := writeAndClose(f, data, mode); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

func writeAndClose(f *os.File, data []byte, mode fs.FileMode) error {
	// Chmod before writing so that a key is never readable by others, and so
	// that the mode does not depend on the umask.
	err := f.Chmod(mode)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", f.Name(), err)
	}
	return nil
}

// issueLeaf creates a fresh P-256 key and a certificate for it from tmpl,
// signed by ca, and returns both as PEM.
func issueLeaf(ca *x509.Certificate, caKey *ecdsa.PrivateKey, tmpl *x509.Certificate) (certPEMBytes, keyPEMBytes []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := createCert(tmpl, ca, key, caKey)
	if err != nil {
		return nil, nil, err
	}
	kp, err := keyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return certPEM(der), kp, nil
}

// createCert fills in a random serial number and signs tmpl.
func createCert(tmpl, parent *x509.Certificate, key, parentKey *ecdsa.PrivateKey) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	return x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
}

func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func keyPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
