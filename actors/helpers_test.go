package actors

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/supervisor"
	"github.com/tokenserver/tokenserver/tlsio"
)

// Helpers shared by the package's own tests. Callbacks run on actor
// goroutines: they only record into channels (put) or use t.Errorf, never
// t.FailNow; the test goroutine waits with deadlines (recv, within).

var (
	certsOnce sync.Once
	devCerts  *tlsio.DevCerts
	certsErr  error
)

// testCerts returns one set of development certificates for the whole test
// binary (generating them is the slow part of a TLS test).
func testCerts(t *testing.T) *tlsio.DevCerts {
	t.Helper()
	certsOnce.Do(func() { devCerts, certsErr = tlsio.GenerateDevCerts() })
	if certsErr != nil {
		t.Fatalf("GenerateDevCerts: %v", certsErr)
	}
	return devCerts
}

// serverTLS is the server's mutual-TLS configuration for plain crypto/tls
// servers written by the tests.
func serverTLS(t *testing.T) *tls.Config {
	t.Helper()
	cfg, err := tlsio.ServerConfig(testCerts(t).ServerOptions())
	if err != nil {
		t.Fatalf("ServerConfig: %v", err)
	}
	return cfg
}

// clientTLS is the client's configuration for raw crypto/tls clients written
// by the tests.
func clientTLS(t *testing.T) *tls.Config {
	t.Helper()
	cfg, err := tlsio.ClientConfig(testCerts(t).ClientOptions())
	if err != nil {
		t.Fatalf("ClientConfig: %v", err)
	}
	return cfg
}

// put records v on ch without ever blocking the actor that runs the
// callback; a full channel is a test error (reported with t.Errorf, which is
// allowed off the test goroutine).
func put[T any](t *testing.T, ch chan<- T, v T) {
	select {
	case ch <- v:
	default:
		t.Errorf("event channel full: %T %v dropped", v, v)
	}
}

// awaitIn is recv for callbacks, which run on actor goroutines: it waits
// for ch (bounded) and reports a timeout with t.Errorf, never t.FailNow. It
// returns whether ch delivered.
func awaitIn[T any](t *testing.T, ch <-chan T, what string) (v T, ok bool) {
	select {
	case v = <-ch:
		return v, true
	case <-time.After(deadline):
		t.Errorf("callback: timed out waiting for %s", what)
		return v, false
	}
}

// within waits until cond holds, checking every millisecond, and fails the
// test after d. It is for states no event reports (a counter reaching zero).
func within(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	stop := time.Now().Add(d)
	for !cond() {
		if time.Now().After(stop) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// none checks that ch yields nothing for d: a bounded wait for a non-event.
func none[T any](t *testing.T, ch <-chan T, d time.Duration, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("unexpected %s: %v", what, v)
	case <-time.After(d):
	}
}

// shutdownWithin shuts a server or client down, failing the test if that
// takes longer than deadline.
func shutdownWithin(t *testing.T, what string, shutdown func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	if err := shutdown(ctx); err != nil {
		t.Errorf("%s Shutdown: %v", what, err)
	}
}

// numbered returns token number n: n in its first 8 bytes (big-endian), then
// size-8 filler bytes derived from n, among which newlines and backslashes,
// so that the frames need escaping. checkNumbered reverses it.
func numbered(n uint64, size int) []byte {
	tok := make([]byte, size)
	binary.BigEndian.PutUint64(tok, n)
	for i := 8; i < size; i++ {
		tok[i] = fillerByte(n, i)
	}
	return tok
}

func fillerByte(n uint64, i int) byte {
	switch (n + uint64(i)) % 7 {
	case 0:
		return '\n'
	case 1:
		return '\\'
	}
	return byte('a' + (n+uint64(i))%26)
}

// checkNumbered returns the number of a token made by numbered, or an error
// if the token is not one of them (wrong size, corrupt filler).
func checkNumbered(tok []byte, size int) (uint64, error) {
	if len(tok) != size {
		return 0, fmt.Errorf("token of %d bytes, want %d", len(tok), size)
	}
	n := binary.BigEndian.Uint64(tok)
	for i := 8; i < size; i++ {
		if tok[i] != fillerByte(n, i) {
			return n, fmt.Errorf("token %d corrupt at byte %d", n, i)
		}
	}
	return n, nil
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// refuses reports whether nothing accepts TCP connections on 127.0.0.1:port
// (a dial is refused).
func refuses(port int) bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
	if err != nil {
		return true
	}
	c.Close()
	return false
}

// fastRetry is a reconnection (or listen retry) policy with delays of min to
// max and no retry limit.
func fastRetry(min, max time.Duration) supervisor.Policy {
	return supervisor.Policy{Initial: min, Max: max, Multiplier: 2, Unlimited: true}
}

// tryRepeatedly runs try(0), try(1)... up to tries times, for at most
// budget, stopping at the first failure, and logs how many ran: the loop
// of the tests that race two things and need many tries to meet each
// moment.
func tryRepeatedly(t *testing.T, tries int, budget time.Duration, try func(i int)) {
	t.Helper()
	began := time.Now()
	i := 0
	for ; i < tries && time.Since(began) < budget && !t.Failed(); i++ {
		try(i)
	}
	t.Logf("%d tries in %v", i, time.Since(began).Round(time.Millisecond))
}

// listeningServer starts a server on 127.0.0.1 with the test certificates
// and opts (its OnConnect is taken), waits until it listens, and shuts it
// down when the test ends.
func listeningServer(t *testing.T, opts ServerOptions) *Server {
	t.Helper()
	listening := make(chan struct{}, 1)
	opts.Host, opts.TLS = "127.0.0.1", testCerts(t).ServerOptions()
	opts.OnConnect = func() { put(t, listening, struct{}{}) }
	srv, err := NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdownWithin(t, "server", srv.Shutdown) })
	recv(t, listening, "listening")
	return srv
}

// connectedClient connects a client with the test certificates and opts (its
// OnConnect is taken) to srv, waits until it is connected, and shuts it
// down when the test ends (before srv).
func connectedClient(t *testing.T, srv *Server, opts ClientOptions) *Client {
	t.Helper()
	connected := make(chan struct{}, 1)
	opts.Host, opts.Port, opts.TLS = "127.0.0.1", srv.Addr().(*net.TCPAddr).Port, testCerts(t).ClientOptions()
	opts.OnConnect = func() { put(t, connected, struct{}{}) }
	cli, err := NewClient(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdownWithin(t, "client", cli.Shutdown) })
	recv(t, connected, "connected")
	return cli
}
