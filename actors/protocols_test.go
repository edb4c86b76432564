package actors

import (
	"crypto/tls"
	"errors"
	"fmt"
	"testing"
)

// The protocol each side ends up speaking: token/2 only when both offer it,
// token/1 with a side restricted to it, and token/1 (no ALPN) with a client
// that offers only protocols the server does not know, as with a peer that
// offers none.
func TestProtocolNegotiation(t *testing.T) {
	t1, t2, both := []string{ProtocolToken1}, []string{ProtocolToken2}, []string(nil)
	for _, tc := range []struct {
		server, client []string
		want           string
	}{
		{both, both, ProtocolToken2},
		{t1, both, ProtocolToken1},
		{both, t1, ProtocolToken1},
		{t2, t2, ProtocolToken2},
		{[]string{ProtocolToken1, ProtocolToken2}, both, ProtocolToken1}, // the server's preference
	} {
		t.Run(fmt.Sprintf("server %v client %v", tc.server, tc.client), func(t *testing.T) {
			srvConn := make(chan *Connection, 1)
			s, err := NewServer(ServerOptions{Host: "127.0.0.1", TLS: testCerts(t).ServerOptions(), Protocols: tc.server,
				OnConnection: func(c *Connection) { put(t, srvConn, c) }})
			if err != nil {
				t.Fatal(err)
			}
			defer shutdownWithin(t, "server", s.Shutdown)
			within(t, deadline, "listening", func() bool { return s.Addr() != nil })
			up := make(chan struct{}, 1)
			c, err := NewClient(ClientOptions{Host: "127.0.0.1", Port: serverPort(s), TLS: testCerts(t).ClientOptions(),
				Protocols: tc.client, OnConnect: func() { put(t, up, struct{}{}) }})
			if err != nil {
				t.Fatal(err)
			}
			defer shutdownWithin(t, "client", c.Shutdown)
			recv(t, up, "connect")
			sc := recv(t, srvConn, "the server's connection")
			if got := c.Connection().Protocol(); got != tc.want {
				t.Errorf("client speaks %q, want %q", got, tc.want)
			}
			if got := sc.Protocol(); got != tc.want {
				t.Errorf("server speaks %q, want %q", got, tc.want)
			}
		})
	}
}

// A TLS client that offers only a protocol the server does not know gets
// token/1, as a client that offers none (the Node original), rather than
// crypto/tls's no_application_protocol alert.
func TestUnknownALPNSpeaksToken1(t *testing.T) {
	srvConn := make(chan *Connection, 1)
	s, err := NewServer(ServerOptions{Host: "127.0.0.1", TLS: testCerts(t).ServerOptions(),
		OnConnection: func(c *Connection) { put(t, srvConn, c) },
		OnToken:      func(tok []byte, c *Connection) { c.Send(tok) }})
	if err != nil {
		t.Fatal(err)
	}
	defer shutdownWithin(t, "server", s.Shutdown)
	within(t, deadline, "listening", func() bool { return s.Addr() != nil })
	for _, offer := range [][]string{nil, {"h2"}} {
		cfg := clientTLS(t)
		cfg.NextProtos = offer
		conn, err := tls.Dial("tcp", s.Addr().String(), cfg)
		if err != nil {
			t.Fatalf("offering %v: %v", offer, err)
		}
		if p := conn.ConnectionState().NegotiatedProtocol; p != "" {
			t.Errorf("offering %v: negotiated %q, want none", offer, p)
		}
		sc := recv(t, srvConn, "the server's connection")
		if sc.Protocol() != ProtocolToken1 {
			t.Errorf("offering %v: the server speaks %q, want token/1", offer, sc.Protocol())
		}
		if _, err := conn.Write([]byte("hi\n")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 3)
		if _, err := conn.Read(buf); err != nil || string(buf) != "hi\n" {
			t.Errorf("offering %v: token/1 echo %q, %v", offer, buf, err)
		}
		conn.Close()
	}
}

// Options that cannot work are errors at construction.
func TestProtocolsValidated(t *testing.T) {
	for _, p := range [][]string{{"token/3"}, {ProtocolToken2, ProtocolToken2}, {"h2"}} {
		_, err := NewServer(ServerOptions{Host: "127.0.0.1", TLS: testCerts(t).ServerOptions(), Protocols: p})
		if !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("server Protocols %v: %v, want ErrInvalidOptions", p, err)
		}
		_, err = NewClient(ClientOptions{Host: "127.0.0.1", Port: 1, TLS: testCerts(t).ClientOptions(), Protocols: p})
		if !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("client Protocols %v: %v, want ErrInvalidOptions", p, err)
		}
	}
	if _, err := NewServer(ServerOptions{Host: "127.0.0.1", TLS: testCerts(t).ServerOptions(), SessionTimeout: -1}); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("a negative SessionTimeout: %v, want ErrInvalidOptions", err)
	}
}

// A token/2 session that ended cleanly with nothing left (Close, the
// server having acknowledged every token) is not resumed: the client's next
// connection opens a new session, with a new id.
func TestCleanCloseStartsANewSession(t *testing.T) {
	srvConn := make(chan *Connection, 2)
	s := listeningServer(t, ServerOptions{
		OnConnection: func(c *Connection) { put(t, srvConn, c) },
		OnToken:      func(tok []byte, c *Connection) { c.Send(tok) }})
	up, closed, echoed := make(chan struct{}, 2), make(chan bool, 2), make(chan string, 4)
	c, err := NewClient(ClientOptions{Host: "127.0.0.1", Port: serverPort(s), TLS: testCerts(t).ClientOptions(),
		OnConnect: func() { put(t, up, struct{}{}) },
		OnClose:   func(had bool) { put(t, closed, had) },
		OnToken:   func(tok []byte, _ *Connection) { put(t, echoed, string(tok)) }})
	if err != nil {
		t.Fatal(err)
	}
	defer shutdownWithin(t, "client", c.Shutdown)
	var sessions []string
	for round := range 2 {
		recv(t, up, "connect")
		sc := recv(t, srvConn, "the server's connection")
		if sc.Protocol() != ProtocolToken2 || sc.Session() == "" {
			t.Fatalf("round %d: protocol %q, session %q; want a token/2 session", round, sc.Protocol(), sc.Session())
		}
		sessions = append(sessions, sc.Session())
		if !c.Send([]byte("ping")) {
			t.Fatalf("round %d: Send refused", round)
		}
		if got := recv(t, echoed, "the echo"); got != "ping" {
			t.Fatalf("round %d: echo %q", round, got)
		}
		if !c.Close() {
			t.Fatalf("round %d: Close returned false", round)
		}
		if had := recv(t, closed, "the close"); had {
			t.Fatalf("round %d: close with an error", round)
		}
		if round == 0 && !c.Connect(0) {
			t.Fatal("Connect(0) after the close returned false")
		}
	}
	if sessions[0] == sessions[1] {
		t.Errorf("the connection after a clean close resumed session %s", sessions[0])
	}
}
