// Package interop tests that tokenserver speaks with the original Node.js
// package, npm token-server 1.0.10, in both directions: a Go server with the
// original's TokenClient (client.js), and the original's TokenServer
// (echo-server.js) with a Go client. Node.js must be on PATH and the npm
// package installed here (`npm ci` in test/interop, which `make test` runs).
package interop

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/wire"
)

// vectorsPath is the vector file produced by the original implementation,
// relative to this package.
// vectorsPath is the copy, in the repository, of ../shared/wire-vectors.json:
// vectors recorded from the original implementation.
const vectorsPath = "../../wire/testdata/wire-vectors.json"

// echoCase is one token to send and get back.
type echoCase struct {
	name  string
	token []byte
}

// echoCases returns every escape vector of wire-vectors.json, the empty
// token and a 1 MiB random binary token.
func echoCases(t *testing.T) []echoCase {
	t.Helper()
	data, err := os.ReadFile(vectorsPath)
	check.NoError(t, err, "the wire vectors")
	var file struct {
		Escape []struct {
			Name  string `json:"name"`
			InHex string `json:"in_hex"`
		} `json:"escape"`
	}
	check.NoError(t, json.Unmarshal(data, &file))
	check.NotEmpty(t, file.Escape)
	var cases []echoCase
	for _, v := range file.Escape {
		b, err := hex.DecodeString(v.InHex)
		check.NoError(t, err, v.Name)
		cases = append(cases, echoCase{"vector/" + v.Name, b})
	}
	big := make([]byte, 1<<20)
	seed := uint64(time.Now().UnixNano())
	t.Logf("random 1 MiB token: seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0x70ce))
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	check.True(t, bytes.IndexByte(big, '\n') >= 0 && bytes.IndexByte(big, '\\') >= 0)
	return append(cases,
		echoCase{"empty token", []byte{}},
		echoCase{"random 1 MiB", big},
	)
}

// pipelinedTokens returns n small tokens, some with newlines and
// backslashes, some empty.
func pipelinedTokens(n int) [][]byte {
	tokens := make([][]byte, n)
	for i := range tokens {
		var s string
		switch {
		case i%1000 == 999:
			s = ""
		case i%7 == 0:
			s = fmt.Sprintf("tok %05d\nnext line", i)
		case i%11 == 0:
			s = fmt.Sprintf("tok\\%05d\\n\\", i)
		default:
			s = fmt.Sprintf("tok %05d", i)
		}
		tokens[i] = []byte(s)
	}
	return tokens
}

// peer is the side that sends tokens and gets the echoes: the Go client or
// client.js.
type peer struct {
	send     func(t *testing.T, token []byte)
	sendMany func(t *testing.T, tokens [][]byte)
	recv     func(t *testing.T) []byte
}

// runEchoCases sends every echo case, one at a time, then 10,000 small
// tokens pipelined, and checks that each comes back byte for byte, in order.
func runEchoCases(t *testing.T, p peer) {
	for _, c := range echoCases(t) {
		t.Run(c.name, func(t *testing.T) {
			p.send(t, c.token)
			got := p.recv(t)
			if !bytes.Equal(got, c.token) {
				t.Fatalf("echo differs: sent %d bytes, got %d bytes\nsent %s\ngot  %s",
					len(c.token), len(got), preview(c.token), preview(got))
			}
		})
	}
	t.Run("pipelined 10000", func(t *testing.T) {
		tokens := pipelinedTokens(10000)
		p.sendMany(t, tokens)
		for i, want := range tokens {
			if got := p.recv(t); !bytes.Equal(got, want) {
				t.Fatalf("token %d: want %q, got %q", i, want, got)
			}
		}
	})
}

func preview(b []byte) string {
	if len(b) > 48 {
		return hex.EncodeToString(b[:48]) + "..."
	}
	return hex.EncodeToString(b)
}

// TestEcho_GoServer_NodeClient: the original TokenClient sends tokens to a Go
// server, which echoes them.
func TestEcho_GoServer_NodeClient(t *testing.T) {
	certs := newCerts(t)
	gs := startGoServer(t, newSystem(t), certs.ServerOptions())
	nc := startNodeClient(t, gs.port, withCert(certs))
	nc.expect("connect")
	recv(t, gs.conns, "the Go server's connection")

	runEchoCases(t, peer{
		send:     func(t *testing.T, tok []byte) { nc.on(t).send(tok) },
		sendMany: func(t *testing.T, toks [][]byte) { nc.on(t).sendMany(toks) },
		recv:     func(t *testing.T) []byte { return nc.on(t).token() },
	})

	// A clean close by the client.
	nc.close()
	ev := nc.expect("close")
	check.False(t, ev.HadError, "client.js close event")
	check.False(t, recv(t, gs.connCloses, "OnConnectionClose"), "hadError of the server's connection")
	none(t, gs.connErrs, "OnConnectionError")
}

// TestEcho_NodeServer_GoClient: a Go client sends tokens to the original
// TokenServer, which echoes them.
func TestEcho_NodeServer_GoClient(t *testing.T) {
	certs := newCerts(t)
	ns := startNodeServer(t, certs)
	gc := startGoClient(t, newSystem(t), ns.port, certs.ClientOptions())
	recv(t, gc.connected, "OnConnect")

	runEchoCases(t, peer{
		send: func(t *testing.T, tok []byte) {
			check.True(t, gc.cli.Send(tok), "Send")
		},
		sendMany: func(t *testing.T, toks [][]byte) {
			for i, tok := range toks {
				check.True(t, gc.cli.Send(tok), "Send of token %d", i)
			}
		},
		recv: func(t *testing.T) []byte { return recv(t, gc.tokens, "an echoed token") },
	})

	check.True(t, gc.cli.Close())
	check.False(t, recv(t, gc.closes, "OnClose"), "hadError")
	none(t, gc.errs, "OnError")
}

// TestServerClose_NodeServer_GoClient: the original server's close() sends
// remoteClose; the Go client sees OnRemoteClose, closes, and the server's
// close event follows.
func TestServerClose_NodeServer_GoClient(t *testing.T) {
	certs := newCerts(t)
	ns := startNodeServer(t, certs)
	gc := startGoClient(t, newSystem(t), ns.port, certs.ClientOptions())
	recv(t, gc.connected, "OnConnect")
	// One round trip: the server has the connection in its list by then.
	check.True(t, gc.cli.Send([]byte("ping")))
	check.Equal(t, []byte("ping"), recv(t, gc.tokens, "the echo"))

	ns.close()
	recv(t, gc.remoteClose, "OnRemoteClose")
	check.True(t, gc.cli.Close(), "Close after remoteClose")
	check.False(t, recv(t, gc.closes, "OnClose"), "hadError")
	check.Equal(t, "closed", ns.nextLine(eventTimeout, "the server's close event"))
	check.NoError(t, ns.waitExit(eventTimeout), "echo-server.js exits 0 when its close event has hadError false")
	none(t, gc.errs, "OnError")
}

// TestServerClose_GoServer_NodeClient: the Go server's Close sends
// remoteClose; the original client emits remoteClose, closes, and the server
// closes cleanly without forcing anything.
func TestServerClose_GoServer_NodeClient(t *testing.T) {
	certs := newCerts(t)
	gs := startGoServer(t, newSystem(t), certs.ServerOptions())
	nc := startNodeClient(t, gs.port, withCert(certs))
	nc.expect("connect")
	nc.send([]byte("ping"))
	check.Equal(t, []byte("ping"), nc.token())

	start := time.Now()
	check.True(t, gs.srv.Close())
	nc.expect("remoteClose")
	nc.close()
	ev := nc.expect("close")
	check.False(t, ev.HadError, "client.js close event")
	check.False(t, recv(t, gs.connCloses, "OnConnectionClose"), "hadError of the connection")
	check.False(t, recv(t, gs.closes, "the server's OnClose"), "hadError of the server")
	check.Less(t, time.Since(start), actors.DefaultCloseTimeout, "the close waited for the force-close deadline")
	none(t, gs.connErrs, "OnConnectionError")
}

// TestMutualTLS_NodeServer_RefusesGoClientWithoutCert: the original server
// requires a client certificate; a Go client without one gets an error event
// and close(true), and the server keeps serving clients that have one.
func TestMutualTLS_NodeServer_RefusesGoClientWithoutCert(t *testing.T) {
	certs := newCerts(t)
	ns := startNodeServer(t, certs)
	sys := newSystem(t)
	opts := certs.ClientOptions()
	opts.Key, opts.Cert = nil, nil
	gc := startGoClient(t, sys, ns.port, opts)

	err := recv(t, gc.errs, "OnError")
	t.Logf("Go client without a certificate: %v", err)
	check.True(t, recv(t, gc.closes, "OnClose"), "hadError")
	check.Empty(t, gc.tokens)

	good := startGoClient(t, sys, ns.port, certs.ClientOptions())
	recv(t, good.connected, "OnConnect of a client with a certificate")
	check.True(t, good.cli.Send([]byte("still here")))
	check.Equal(t, []byte("still here"), recv(t, good.tokens, "the echo"))
}

// TestMutualTLS_GoServer_RefusesNodeClientWithoutCert: the Go server requires
// a client certificate; the original client without one is refused with a
// handshake error, and gets error and close(true).
func TestMutualTLS_GoServer_RefusesNodeClientWithoutCert(t *testing.T) {
	certs := newCerts(t)
	gs := startGoServer(t, newSystem(t), certs.ServerOptions())
	nc := startNodeClient(t, gs.port, clientTLS{ca: certs.path("ca.crt")})

	ce := recv(t, gs.connErrs, "OnConnectionError")
	t.Logf("Go server, client without a certificate: %v", ce.err)
	check.ErrorIs(t, ce.err, actors.ErrHandshake)
	check.True(t, recv(t, gs.connCloses, "OnConnectionClose"), "hadError")

	evs := nc.until("close")
	t.Logf("client.js events: %v", evs)
	requireErrorThenClose(t, evs)
	check.Empty(t, gs.srv.Connections())
}

// TestMutualTLS_GoClientDistrustsNodeServer: a Go client that trusts another
// CA refuses the original server.
func TestMutualTLS_GoClientDistrustsNodeServer(t *testing.T) {
	certs, other := newCerts(t), newCerts(t)
	ns := startNodeServer(t, certs)
	opts := certs.ClientOptions()
	opts.CA = other.CACert
	gc := startGoClient(t, newSystem(t), ns.port, opts)

	err := recv(t, gc.errs, "OnError")
	t.Logf("Go client trusting another CA: %v", err)
	check.ErrorIs(t, err, actors.ErrDial)
	check.True(t, recv(t, gc.closes, "OnClose"), "hadError")
	check.Empty(t, gc.connected, "OnConnect must not fire")
}

// TestMutualTLS_NodeClientDistrustsGoServer: the original client that trusts
// another CA refuses the Go server, which sees a handshake error.
func TestMutualTLS_NodeClientDistrustsGoServer(t *testing.T) {
	certs, other := newCerts(t), newCerts(t)
	gs := startGoServer(t, newSystem(t), certs.ServerOptions())
	files := withCert(certs)
	files.ca = other.path("ca.crt")
	nc := startNodeClient(t, gs.port, files)

	evs := nc.until("close")
	t.Logf("client.js events: %v", evs)
	requireErrorThenClose(t, evs)
	for _, ev := range evs {
		check.NotEqual(t, "connect", ev.Event, "client.js connected to a server it should not trust")
	}

	// Node checks the server's certificate once OpenSSL has finished the
	// handshake, then destroys the socket, in practice before its Finished
	// message has left: the Go server's handshake then ends in EOF. That is a
	// failed handshake, which must be an error event (ErrHandshake) followed
	// by OnConnectionClose(true). Only if the server's handshake did complete
	// (OnConnection) is a clean close without an error event right.
	hadError := recv(t, gs.connCloses, "OnConnectionClose")
	handshakeDone := len(gs.conns) > 0 // OnConnection comes before OnConnectionClose
	select {
	case ce := <-gs.connErrs:
		t.Logf("Go server, client distrusting it: error %v (handshake done: %v)", ce.err, handshakeDone)
		check.True(t, hadError, "OnConnectionClose hadError after an error event")
		if !handshakeDone {
			check.ErrorIs(t, ce.err, actors.ErrHandshake)
		}
	default:
		check.True(t, handshakeDone,
			"the Go server's TLS handshake failed (no OnConnection) but it reported no OnConnectionError; OnConnectionClose hadError=%v", hadError)
		check.False(t, hadError, "OnConnectionClose hadError without an error event")
	}
	check.Equal(t, actors.ONLINE, gs.srv.Status())
	check.Empty(t, gs.srv.Connections())
}

// requireErrorThenClose checks that client.js reported an error and then
// close(hadError=true), and received no token.
func requireErrorThenClose(t *testing.T, evs []clientEvent) {
	t.Helper()
	sawError := false
	for _, ev := range evs {
		switch ev.Event {
		case "error":
			sawError = true
		case "token":
			t.Fatalf("client.js received a token: %v", ev)
		}
	}
	check.True(t, sawError, "client.js error event before close: %v", evs)
	check.True(t, evs[len(evs)-1].HadError, "client.js close hadError")
}

// TestInvalidEscape_GoServerSurvives: a client sending `\x` and a newline,
// which crashes the original server (see the next test), loses its own
// connection with wire.ErrInvalidEscape; the Go server and its other
// connection keep working.
func TestInvalidEscape_GoServerSurvives(t *testing.T) {
	certs := newCerts(t)
	gs := startGoServer(t, newSystem(t), certs.ServerOptions())
	good := startNodeClient(t, gs.port, withCert(certs))
	good.expect("connect")
	bad := startNodeClient(t, gs.port, withCert(certs))
	bad.expect("connect")
	for _, c := range []*nodeClient{good, bad} {
		c.send([]byte("hello"))
		check.Equal(t, []byte("hello"), c.token())
	}
	check.Len(t, gs.srv.Connections(), 2)

	bad.raw([]byte("\\x\n"))
	ce := recv(t, gs.connErrs, "OnConnectionError")
	t.Logf("Go server, invalid escape: %v", ce.err)
	check.ErrorIs(t, ce.err, wire.ErrInvalidEscape)
	check.ErrorIs(t, ce.err, actors.ErrProtocol)
	check.True(t, recv(t, gs.connCloses, "OnConnectionClose"), "hadError")
	evs := bad.until("close")
	t.Logf("client.js (bad) events: %v", evs)

	for i := range 100 {
		tok := []byte(fmt.Sprintf("after %d\n\\", i))
		good.send(tok)
		check.Equal(t, tok, good.token())
	}
	check.Equal(t, actors.ONLINE, gs.srv.Status())
	check.Len(t, gs.srv.Connections(), 1)
	none(t, gs.connErrs, "another OnConnectionError")
	none(t, gs.errs, "a server OnError")
}

// TestInvalidEscape_NodeServerCrashes documents what the Go server guards
// against: the same bytes make the original server throw an uncaught
// exception and exit.
func TestInvalidEscape_NodeServerCrashes(t *testing.T) {
	certs := newCerts(t)
	ns := startNodeServer(t, certs)
	nc := startNodeClient(t, ns.port, withCert(certs))
	nc.expect("connect")
	nc.send([]byte("hello"))
	check.Equal(t, []byte("hello"), nc.token())

	nc.raw([]byte("\\x\n"))
	err := ns.waitExit(eventTimeout)
	code, exited := errExitedWith(err)
	check.True(t, exited && code != 0, "echo-server.js should crash, got %v", err)
	check.Contains(t, ns.stderr.String(), "Unescaped backslash detected!")
	evs := nc.until("close")
	t.Logf("echo-server.js exit code %d; client.js events: %v", code, evs)
}
