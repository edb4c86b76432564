package hardening

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
	"github.com/tokenserver/tokenserver/wire"
)

// What a crowd of connections can cost is bounded: running out of file
// descriptors, sockets that never handshake, and floods of handshakes slow
// down or refuse newcomers, never the server as a whole.

// fdChildEnv makes this test binary a token server whose descriptor limit is
// lowered to the value of the variable (see init below).
const fdChildEnv = "TOKENSERVER_FD_LIMIT"

// The server of TestDescriptorExhaustionIsSurvived runs in a child process
// (this test binary again) with a low descriptor limit. It prints
// "listening PORT", then one line per server event; its logger's lines
// (accept backoff) go to stdout too. It ends when stdin closes.
func init() {
	limit := os.Getenv(fdChildEnv)
	if limit == "" {
		return
	}
	var n uint64
	if _, err := fmt.Sscan(limit, &n); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: n, Max: n}); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	opts, err := childCerts("server")
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	opts.RequestCert = true
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Printf(format+"\n", args...)
	}
	up := make(chan struct{})
	srv, err := actors.NewServer(actors.ServerOptions{
		Host: "127.0.0.1", TLS: opts,
		Limits:    actors.Limits{HandshakeTimeout: 2 * time.Second},
		Runtime:   actors.Runtime{Logger: newLineLogger(say)},
		OnConnect: func() { close(up) },
		OnToken:   func(tok []byte, c *actors.Connection) { c.Send(tok) },
		OnError:   func(err error) { say("server error %v", err) },
		OnClose:   func(had bool) { say("server closed hadError=%v", had) },
	})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	<-up
	say("listening %d", srv.Addr().(*net.TCPAddr).Port)
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = srv.Shutdown(context.Background())
	os.Exit(0)
}

// The process runs out of descriptors under a crowd of plain TCP sockets:
// accept backs off and goes on, the server never closes, and once the crowd
// is gone a valid client is served within 2 s.
func TestDescriptorExhaustionIsSurvived(t *testing.T) {
	certs, err := tlsio.GenerateDevCerts()
	require.NoError(t, err)
	dir := t.TempDir()
	require.NoError(t, certs.WriteFiles(dir, false))
	child := startChild(t, map[string]string{fdChildEnv: "40", "TOKENSERVER_CERTS": dir})
	port := child.waitLine(t, "listening ")

	crowd := make([]net.Conn, 0, 60)
	for range 60 {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, deadline)
		require.NoError(t, err)
		crowd = append(crowd, c)
	}
	child.waitLine(t, "accept failed") // EMFILE: the server backs off
	for _, c := range crowd {
		c.Close()
	}

	cfg, err := tlsio.ClientConfig(certs.ClientOptions())
	require.NoError(t, err)
	start := time.Now()
	var echoed bool
	for time.Since(start) < 2*time.Second && !echoed {
		echoed = echoOnce(t, "127.0.0.1:"+port, cfg, nil) == nil
	}
	require.True(t, echoed, "a valid client was not served within 2 s of the crowd leaving")
	t.Logf("served %v after the crowd left", time.Since(start).Round(time.Millisecond))
	require.False(t, child.saw("server closed"), "the server closed:\n%s", child.output())
	require.False(t, child.saw("server error"), "the server reported an error:\n%s", child.output())
}

// One address holding more raw sockets than its pending budget: the sockets
// over it wait their turn (issue 26: they were refused at once), and a
// client from another address connects and echoes within 1 s. A crowd of
// addresses holding the whole pending budget does not disturb an
// established connection.
func TestPendingBudgetPerAddress(t *testing.T) {
	before := countFDs(t)
	r := newRig(t, func(o *actors.ServerOptions) {
		o.MaxPending = 24
		o.MaxPendingPerAddr = 8
	})
	silent := dialSilent(t, r.port, "127.0.0.1", 20)

	cfg, err := tlsio.ClientConfig(r.certs.ClientOptions())
	require.NoError(t, err)
	start := time.Now()
	require.NoError(t, echoOnce(t, fmt.Sprintf("127.0.0.1:%d", r.port), cfg, &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}))
	t.Logf("a client from 127.0.0.2 echoed in %v while 127.0.0.1 held its pending budget", time.Since(start).Round(time.Microsecond))
	require.Less(t, time.Since(start), time.Second)
	// The server took the 20 sockets before the client (it accepts in
	// order): the 12 over the per-address budget were queued, not refused.
	st := r.srv.Stats()
	require.GreaterOrEqual(t, st.Accepted, int64(1+20+1))
	require.Zero(t, st.RefusedMaxPending, "the sockets over the per-address budget wait their turn")
	require.Zero(t, r.errorsMatching(actors.ErrTooManyPending))

	// A crowd from other addresses fills the whole pending budget; the
	// established (healthy) connection goes on.
	for i := 3; i <= 4; i++ {
		silent = append(silent, dialSilent(t, r.port, fmt.Sprintf("127.0.0.%d", i), 8)...)
	}
	for i := range 20 {
		r.checkHealthy(fmt.Sprintf("with the pending budget full (%d)", i))
	}
	for _, c := range silent {
		c.Close()
	}
	require.Eventually(t, func() bool { return countFDs(t) <= before+8 }, deadline, 10*time.Millisecond,
		"descriptors back near %d", before)
}

// A flood of handshakes (200 clients connecting and disconnecting, from
// another process, RSA server key) next to an established connection: every
// round trip of the established connection succeeds. The p99 of its round
// trips with the flood, against without, is logged (a ratio, for the notes;
// not asserted: timings do not belong in pass/fail tests).
func TestHandshakeFloodSparesEstablishedConnections(t *testing.T) {
	before := countFDs(t)
	certs, rsaServer := rsaServerOptions(t)
	r := newRigWith(t, certs, func(o *actors.ServerOptions) { o.TLS = rsaServer })
	roundTrips(t, r, 200) // warm up
	quiet := roundTrips(t, r, 2000)

	dir := t.TempDir()
	require.NoError(t, certs.WriteFiles(dir, false))
	flood := startChild(t, map[string]string{floodEnv: fmt.Sprintf("127.0.0.1:%d", r.port), "TOKENSERVER_CERTS": dir})
	flood.waitLine(t, "flooding")
	var flooded []time.Duration
	for !flood.saw("done") && len(flooded) < 20000 {
		flooded = append(flooded, roundTrips(t, r, 50)...)
	}
	summary := flood.waitLine(t, "done")
	p99q, p99f := percentile(quiet, 0.99), percentile(flooded, 0.99)
	t.Logf("established round trip p99: %v quiet, %v during the flood (%s; %d round trips): ratio %.1f (p50 %v / %v)",
		p99q, p99f, summary, len(flooded), float64(p99f)/float64(p99q), percentile(quiet, 0.5), percentile(flooded, 0.5))
	require.Eventually(t, func() bool { return countFDs(t) <= before+8 }, deadline, 10*time.Millisecond)
}

// floodEnv makes this test binary a flood of 200 TLS clients that connect
// to the address in the variable and disconnect, 16 at a time.
const floodEnv = "TOKENSERVER_FLOOD_ADDR"

func init() {
	addr := os.Getenv(floodEnv)
	if addr == "" {
		return
	}
	opts, err := childCerts("client")
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	cfg, err := tlsio.ClientConfig(opts)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("flooding")
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, failed := 0, 0
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < 200; i += 16 {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				c, err := tlsio.Dial(ctx, addr, cfg, tlsio.DialConfig{})
				cancel()
				mu.Lock()
				if err != nil {
					failed++
				} else {
					ok++
					c.Close()
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	fmt.Printf("done %d handshakes, %d failed, in %v\n", ok, failed, time.Since(start).Round(time.Millisecond))
	_, _ = io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// roundTrips makes n round trips on the rig's healthy client and returns
// their durations. Every one must succeed.
func roundTrips(t *testing.T, r *rig, n int) []time.Duration {
	t.Helper()
	out := make([]time.Duration, 0, n)
	for i := range n {
		tok := fmt.Appendf(nil, "rt %d", i)
		start := time.Now()
		require.True(t, r.healthy.Send(tok))
		require.Equal(t, tok, wait(t, r.replies, "round trip"))
		out = append(out, time.Since(start))
	}
	return out
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// dialSilent opens n plain TCP sockets from the address from that send
// nothing; they are closed at the end of the test.
func dialSilent(t *testing.T, port int, from string, n int) []net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: deadline, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	out := make([]net.Conn, 0, n)
	for range n {
		c, err := d.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		out = append(out, c)
	}
	return out
}

// echoOnce dials addr (from local, if set), sends one token and reads it
// back.
func echoOnce(t *testing.T, addr string, cfg *tls.Config, local net.Addr) error {
	t.Helper()
	d := net.Dialer{Timeout: time.Second, LocalAddr: local}
	raw, err := d.Dial("tcp", addr)
	if err != nil {
		return err
	}
	cc := cfg.Clone()
	cc.ServerName = "localhost"
	c := tls.Client(raw, cc)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	tok := []byte("hello from afar")
	if _, err := c.Write(wire.AppendToken(nil, tok)); err != nil {
		return err
	}
	dec, _ := wire.NewDecoder(1024)
	buf := make([]byte, 256)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return err
		}
		frames, err := dec.AppendFrames(nil, buf[:n])
		if err != nil {
			return err
		}
		if len(frames) > 0 {
			if string(frames[0].Token) != string(tok) {
				return fmt.Errorf("echo %q", frames[0].Token)
			}
			return nil
		}
	}
}

// rsaServerOptions returns development certificates and server options
// whose key is RSA 2048 (the original's cert-gen.sh makes RSA 4096; 2048
// keeps the test quick and still costs a millisecond or so per handshake).
func rsaServerOptions(t *testing.T) (*tlsio.DevCerts, tlsio.Options) {
	t.Helper()
	certs, err := tlsio.GenerateDevCerts()
	require.NoError(t, err)
	caBlock, _ := pem.Decode(certs.CACert)
	ca, err := x509.ParseCertificate(caBlock.Bytes)
	require.NoError(t, err)
	keyBlock, _ := pem.Decode(certs.CAKey)
	caKey, err := x509.ParsePKCS8PrivateKey(keyBlock.Bytes)
	require.NoError(t, err)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "rsa server"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	require.NoError(t, err)
	opts := certs.ServerOptions()
	opts.Cert = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	opts.Key = pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	return certs, opts
}

// childCerts loads, in a child process, the certificates its parent wrote
// to the directory TOKENSERVER_CERTS, for role "server" or "client".
func childCerts(role string) (tlsio.Options, error) {
	dir := os.Getenv("TOKENSERVER_CERTS")
	return tlsio.LoadFiles(dir+"/"+role+".key", dir+"/"+role+".crt", dir+"/ca.crt")
}

// child is a server in a child process.
type child struct {
	mu    sync.Mutex
	lines []string
	more  chan struct{}
}

// startChild runs this test binary with env as a child server (see init).
func startChild(t *testing.T, env map[string]string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	c := &child{more: make(chan struct{}, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.mu.Lock()
			c.lines = append(c.lines, sc.Text())
			c.mu.Unlock()
			select {
			case c.more <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		stdin.Close()
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("child server: %v\n%s", err, c.output())
			}
		case <-time.After(deadline):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("child server did not exit\n%s", c.output())
		}
		<-done
	})
	return c
}

// waitLine waits for a line containing s and returns what follows s.
func (c *child) waitLine(t *testing.T, s string) string {
	t.Helper()
	return c.waitLineWithin(t, s, deadline)
}

// waitLineWithin is waitLine with a time limit of its own.
func (c *child) waitLineWithin(t *testing.T, s string, within time.Duration) string {
	t.Helper()
	limit := time.After(within)
	for {
		c.mu.Lock()
		for _, l := range c.lines {
			if i := strings.Index(l, s); i >= 0 {
				c.mu.Unlock()
				return strings.TrimSpace(l[i+len(s):])
			}
		}
		c.mu.Unlock()
		select {
		case <-c.more:
		case <-limit:
			t.Fatalf("child server never printed %q:\n%s", s, c.output())
		}
	}
}

func (c *child) saw(s string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.ContainsFunc(c.lines, func(l string) bool { return strings.Contains(l, s) })
}

func (c *child) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.lines, "\n")
}
