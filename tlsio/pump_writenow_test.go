//go:build linux

package tlsio

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// tcpPair is a connected pair of TCP sockets on 127.0.0.1.
func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := pumpWait(t, accepted, "accept")
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() {
		a.Close()
		b.Close()
	})
	return a.(*net.TCPConn), b.(*net.TCPConn)
}

// readN reads n bytes from c within 10 s.
func readN(t *testing.T, c net.Conn, n int) []byte {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, n)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("reading %d bytes: %v", n, err)
	}
	return buf
}

// WriteNow writes a small batch at once on an idle socket, in order, and
// the pump reports nothing for it; a batch over MaxWriteNow is left to
// the pump.
func TestWriteNowOnAnIdleSocket(t *testing.T) {
	a, b := tcpPair(t)
	written, stopped := make(chan int, 4), make(chan error, 1)
	p := StartWritePump(a, time.Second, func(n int) { written <- n }, func(err error) { stopped <- err })
	n, wrote, err := p.WriteNow([][]byte{[]byte("abc\n"), []byte("de\n")})
	if !wrote || err != nil || n != 7 {
		t.Fatalf("WriteNow = %d, %v, %v; want 7 written", n, wrote, err)
	}
	if got := readN(t, b, 7); string(got) != "abc\nde\n" {
		t.Fatalf("peer read %q", got)
	}
	big := bytes.Repeat([]byte("x"), MaxWriteNow+1)
	if _, wrote, _ := p.WriteNow([][]byte{big}); wrote {
		t.Fatal("WriteNow wrote a batch over MaxWriteNow")
	}
	if !p.Write([]byte("pump\n")) {
		t.Fatal("the pump refused a batch")
	}
	if n := pumpWait(t, written, "written"); n != 5 {
		t.Fatalf("the pump reported %d bytes written, want 5 (its own batch only)", n)
	}
	if got := readN(t, b, 5); string(got) != "pump\n" {
		t.Fatalf("peer read %q after the refused batch, want the pump's", got)
	}
	p.Close()
	if err := pumpWait(t, stopped, "stop"); err != nil {
		t.Fatalf("stop error = %v", err)
	}
}

// With bytes the peer has not acknowledged in the send queue, WriteNow
// leaves the batch to the pump (a write might block).
func TestWriteNowWaitsForAnEmptySendQueue(t *testing.T) {
	a, b := tcpPair(t)
	p := StartWritePump(a, 10*time.Second, func(int) {}, func(error) {})
	defer func() { p.Close(); pumpWait(t, p.Done(), "pump exit") }()
	const fill = 32 << 20                              // more than the socket buffers of both ends hold
	go func() { _, _ = a.Write(make([]byte, fill)) }() // the peer reads nothing yet
	deadline := time.Now().Add(10 * time.Second)
	for p.queue() {
		if time.Now().After(deadline) {
			t.Fatal("the send queue never filled")
		}
		time.Sleep(time.Millisecond)
	}
	if _, wrote, _ := p.WriteNow([][]byte{[]byte("late\n")}); wrote {
		t.Fatal("WriteNow wrote with a send queue that is not empty")
	}
	readN(t, b, fill)
}

// A failed WriteNow stops the pump with the same *WriteError.
func TestWriteNowFailureStopsThePump(t *testing.T) {
	a, b := tcpPair(t)
	stopped := make(chan error, 1)
	p := StartWritePump(a, time.Second, func(int) {}, func(err error) { stopped <- err })
	_ = b.SetLinger(0)
	b.Close() // a reset
	_ = a.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := a.Read(make([]byte, 1)); err == nil {
		t.Fatal("read a byte from a reset peer")
	}
	n, wrote, err := p.WriteNow([][]byte{[]byte("after the reset\n")})
	var we *WriteError
	if !wrote || !errors.As(err, &we) || n != 0 {
		t.Fatalf("WriteNow after a reset = %d, %v, %v; want it tried and failed with a *WriteError", n, wrote, err)
	}
	if serr := pumpWait(t, stopped, "stop"); serr != err {
		t.Fatalf("the pump stopped with %v, want WriteNow's error %v", serr, err)
	}
	pumpWait(t, p.Done(), "pump exit")
}

// Under TLS the probe asks the socket beneath; on a connection that is
// not a socket (net.Pipe) WriteNow never writes.
func TestWriteNowSocketKinds(t *testing.T) {
	a, b := tcpPair(t)
	d := tlsTestDevCerts(t)
	scfg, ccfg := tlsTestServerConfig(t, d.ServerOptions()), tlsTestClientConfig(t, d.ClientOptions())
	ccfg.ServerName = "localhost"
	server, client := tls.Server(a, scfg), tls.Client(b, ccfg)
	errs := make(chan error, 1)
	go func() { errs <- client.Handshake() }()
	if err := server.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := pumpWait(t, errs, "client handshake"); err != nil {
		t.Fatal(err)
	}
	p := StartWritePump(server, time.Second, func(int) {}, func(error) {})
	if n, wrote, err := p.WriteNow([][]byte{[]byte("sealed\n")}); !wrote || err != nil || n != 7 {
		t.Fatalf("WriteNow over TLS = %d, %v, %v; want 7 written", n, wrote, err)
	}
	_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 7)
	if _, err := io.ReadFull(client, buf); err != nil || string(buf) != "sealed\n" {
		t.Fatalf("the TLS peer read %q, %v", buf, err)
	}
	p.Close()
	pumpWait(t, p.Done(), "pump exit")

	x, y := net.Pipe()
	defer x.Close()
	defer y.Close()
	q := StartWritePump(x, time.Second, func(int) {}, func(error) {})
	if _, wrote, _ := q.WriteNow([][]byte{[]byte("pipe\n")}); wrote {
		t.Error("WriteNow wrote on a net.Pipe, which has no send queue to ask")
	}
	q.Close()
	pumpWait(t, q.Done(), "pump exit")
}
