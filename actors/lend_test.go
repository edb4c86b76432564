package actors

import (
	"errors"
	"net"
	"runtime"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
)

// LendTokens: the callbacks borrow the tokens, and the read buffers they lie
// in are read into again once the owner is done with them.

// Lent tokens are whole and in order for the duration of the call, both
// ways, on both protocols, with reads small enough that buffers are reused
// all the time and frames straddle them. A buffer read into again before its
// callback returned would corrupt a token (or, under -race, be a race).
func TestLentTokensKeepOrderOverTLS(t *testing.T) {
	for _, proto := range []string{ProtocolToken1, ProtocolToken2} {
		t.Run(proto, func(t *testing.T) {
			atServer := newOrderChecker(t, "server", orderCount)
			atClient := newOrderChecker(t, "client", orderCount)
			listening := make(chan struct{}, 1)
			srv, err := NewServer(ServerOptions{
				Host: "127.0.0.1", TLS: testCerts(t).ServerOptions(),
				Limits:     Limits{ReadBufferSize: 5000},
				LendTokens: true,
				OnConnect:  func() { put(t, listening, struct{}{}) },
				OnTokens: func(toks [][]byte, c *Connection) {
					for _, tok := range toks {
						atServer.token(tok)
					}
					runtime.Gosched() // give the read pump a chance to run
					if !c.SendBatch(toks) {
						t.Errorf("the server's SendBatch refused %d tokens", len(toks))
					}
				},
				OnConnectionError: func(_ *Connection, err error) { t.Errorf("server connection: %v", err) },
			})
			if err != nil {
				t.Fatal(err)
			}
			defer shutdownWithin(t, "server", srv.Shutdown)
			recv(t, listening, "listening")
			connected := make(chan struct{}, 1)
			cli, err := NewClient(ClientOptions{
				Host: "127.0.0.1", Port: srv.Addr().(*net.TCPAddr).Port, TLS: testCerts(t).ClientOptions(),
				Protocols:  []string{proto},
				Limits:     Limits{ReadBufferSize: 4096},
				LendTokens: true,
				OnConnect:  func() { put(t, connected, struct{}{}) },
				OnToken: func(tok []byte, _ *Connection) {
					runtime.Gosched()
					atClient.token(tok)
				},
				OnError: func(err error) { t.Errorf("client: %v", err) },
			})
			if err != nil {
				t.Fatal(err)
			}
			defer shutdownWithin(t, "client", cli.Shutdown)
			recv(t, connected, "connected")
			conn := cli.Connection()
			if got := conn.Protocol(); got != proto {
				t.Fatalf("negotiated %q, want %q", got, proto)
			}
			sendOrdered(t, orderCount, cli.Send, conn.SendBatch)
			recv(t, atServer.done, "every token at the server")
			recv(t, atClient.done, "every echo at the client")
		})
	}
}

// What lending saves: a server that keeps the tokens it is given needs a
// new read buffer for nearly every read, one that lends them reads into the
// same few. The bytes allocated per 1 KiB token, in this process (server
// and client), fall by more than half.
func TestLentTokensReuseReadBuffers(t *testing.T) {
	const count, size = 3000, 1 << 10
	perToken := func(lend bool) float64 {
		done := make(chan struct{})
		got := 0
		listening := make(chan struct{}, 1)
		srv, err := NewServer(ServerOptions{
			Host: "127.0.0.1", TLS: testCerts(t).ServerOptions(),
			LendTokens: lend,
			OnConnect:  func() { put(t, listening, struct{}{}) },
			OnToken: func(tok []byte, _ *Connection) {
				if got++; got == count {
					close(done)
				}
			},
			OnConnectionError: func(_ *Connection, err error) { t.Errorf("server connection: %v", err) },
		})
		if err != nil {
			t.Fatal(err)
		}
		defer shutdownWithin(t, "server", srv.Shutdown)
		recv(t, listening, "listening")
		connected := make(chan struct{}, 1)
		cli, err := NewClient(ClientOptions{
			Host: "127.0.0.1", Port: srv.Addr().(*net.TCPAddr).Port, TLS: testCerts(t).ClientOptions(),
			OnConnect: func() { put(t, connected, struct{}{}) },
			OnError:   func(err error) { t.Errorf("client: %v", err) },
		})
		if err != nil {
			t.Fatal(err)
		}
		defer shutdownWithin(t, "client", cli.Shutdown)
		recv(t, connected, "connected")
		toks := make([][]byte, 100)
		for i := range toks {
			toks[i] = numbered(uint64(i), size)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for sent := 0; sent < count; sent += len(toks) {
			if !cli.Connection().SendBatch(toks) {
				t.Fatal("SendBatch refused")
			}
		}
		recv(t, done, "every token at the server")
		runtime.ReadMemStats(&after)
		return float64(after.TotalAlloc-before.TotalAlloc) / count
	}
	perToken(false) // the first server and client of the process allocate more
	kept, lent := perToken(false), perToken(true)
	t.Logf("bytes allocated per %d-byte token: %.0f given, %.0f lent", size, kept, lent)
	if lent > kept/2 {
		t.Errorf("lending saved too little: %.0f bytes per token lent, %.0f given", lent, kept)
	}
}

// A handler PID's messages outlive any call: their tokens cannot be lent.
func TestLendTokensWithHandlerIsInvalid(t *testing.T) {
	sys := NewQuietSystem()
	defer sys.Shutdown()
	pid := sys.Root.Spawn(HandlerProps(func() actor.Actor { return actor.ReceiveFunc(func(actor.Context) {}) }))
	_, err := NewServer(ServerOptions{Host: "127.0.0.1", TLS: testCerts(t).ServerOptions(),
		Handler: pid, Runtime: Runtime{System: sys}, LendTokens: true})
	if !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("NewServer: %v, want ErrInvalidOptions", err)
	}
	_, err = NewClient(ClientOptions{Host: "127.0.0.1", Port: 1, TLS: testCerts(t).ClientOptions(),
		Handler: pid, Runtime: Runtime{System: sys}, LendTokens: true})
	if !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("NewClient: %v, want ErrInvalidOptions", err)
	}
}
