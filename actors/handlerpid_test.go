package actors

import (
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/require"
)

// forwarder is a handler actor that forwards every event message to a
// channel (HandlerProps returns the credit).
func forwarder(t *testing.T, events chan<- any) *actor.Props {
	return HandlerProps(func() actor.Actor {
		return actor.ReceiveFunc(func(ctx actor.Context) {
			switch m := ctx.Message().(type) {
			case *Listening, *Connected, *TokenReceived, *Closed:
				put(t, events, any(m))
			}
		})
	})
}

// A Handler that the runtime's actor system cannot deliver to is an
// ErrInvalidOptions error from NewServer, NewClient and NewConnection, which
// says what to fix; before, each returned a handle whose handler received
// nothing.
func TestHandlerNotOfTheRuntimeSystemIsAnError(t *testing.T) {
	other := NewQuietSystem()
	t.Cleanup(other.Shutdown)
	events := make(chan any, 16)
	foreign := other.Root.Spawn(forwarder(t, events))
	named, err := other.Root.SpawnNamed(forwarder(t, events), "handler-of-another-system")
	require.NoError(t, err)

	mine := NewQuietSystem()
	t.Cleanup(mine.Shutdown)
	stopped := mine.Root.Spawn(forwarder(t, events))
	require.NoError(t, mine.Root.StopFuture(stopped).Wait())

	cases := []struct {
		name    string
		handler *actor.PID
		system  *actor.ActorSystem
		want    string
	}{
		// The README's case: the handler's system is not given, the handle
		// would run in a private one.
		{"no Runtime.System", foreign, nil, "set Runtime.System to the handler's actor system"},
		{"another system", named, mine, "set Runtime.System to the handler's actor system"},
		{"a stopped actor", stopped, mine, "is no actor of Runtime.System"},
		{"a node without remote", actor.NewPID("127.0.0.1:1", "handler"), mine, "start Proto.Actor remote on Runtime.System"},
	}
	check := func(t *testing.T, err error, want string) {
		t.Helper()
		require.Error(t, err, "the handler was accepted")
		require.True(t, errors.Is(err, ErrInvalidOptions), "%v is not ErrInvalidOptions", err)
		require.Contains(t, err.Error(), want)
	}
	for _, tc := range cases {
		rt := Runtime{System: tc.system}
		t.Run(tc.name+"/NewServer", func(t *testing.T) {
			s, err := NewServer(ServerOptions{Host: "127.0.0.1", TLS: testCerts(t).ServerOptions(), Runtime: rt, Handler: tc.handler})
			if s != nil {
				shutdownWithin(t, "server", s.Shutdown)
			}
			check(t, err, tc.want)
		})
		t.Run(tc.name+"/NewClient", func(t *testing.T) {
			c, err := NewClient(ClientOptions{Host: "127.0.0.1", Port: 1, TLS: testCerts(t).ClientOptions(), Runtime: rt, Handler: tc.handler})
			if c != nil {
				shutdownWithin(t, "client", c.Shutdown)
			}
			check(t, err, tc.want)
		})
		t.Run(tc.name+"/NewConnection", func(t *testing.T) {
			a, b := net.Pipe()
			defer b.Close()
			conn, err := NewConnection(a, ConnectionOptions{Runtime: rt, Handler: tc.handler})
			if conn != nil {
				conn.Close()
			} else {
				a.Close()
			}
			check(t, err, tc.want)
		})
	}
	none(t, events, 50*time.Millisecond, "event at a handler")
}

// remoteNode stands for a node that Proto.Actor remote reaches: the
// process the system's address resolver returns for its PIDs.
type remoteNode chan any

func (n remoteNode) SendUserMessage(_ *actor.PID, m any) {
	select {
	case n <- actor.UnwrapEnvelopeMessage(m):
	default:
	}
}
func (remoteNode) SendSystemMessage(*actor.PID, any) {}
func (remoteNode) Stop(*actor.PID)                   {}

// A handler of the runtime's system, and a handler on a node the system
// reaches (Proto.Actor remote registers an address resolver, as this test
// does), are allowed and get the events.
func TestHandlerOfTheSystemOrOfAReachableNodeIsAllowed(t *testing.T) {
	sys := NewQuietSystem()
	t.Cleanup(sys.Shutdown)
	node := make(remoteNode, 16)
	sys.ProcessRegistry.RegisterAddressResolver(func(pid *actor.PID) (actor.Process, bool) {
		return node, pid.Address == "node-b.test:8090"
	})
	events := make(chan any, 16)
	local := sys.Root.Spawn(forwarder(t, events))
	t.Cleanup(func() { _ = sys.Root.StopFuture(local).Wait() })

	for _, tc := range []struct {
		name    string
		handler *actor.PID
		got     <-chan any
	}{
		{"local", local, events},
		{"remote", actor.NewPID("node-b.test:8090", "handler"), node},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewServer(ServerOptions{Host: "127.0.0.1", TLS: testCerts(t).ServerOptions(),
				Runtime: Runtime{System: sys}, Handler: tc.handler})
			require.NoError(t, err)
			defer shutdownWithin(t, "server", s.Shutdown)
			_, ok := recv(t, tc.got, "the Listening event at the handler").(*Listening)
			require.True(t, ok, "first event at the handler is not Listening")
		})
	}
}

// Events that end as dead letters at the handler (here: it stopped while
// the server and the client run) are logged once per server and once per
// client, with what to fix, however many there are; the watch ends with
// them. Before, nothing was logged.
func TestHandlerDeadLettersAreLoggedOnce(t *testing.T) {
	sys := NewQuietSystem()
	t.Cleanup(sys.Shutdown)
	events := make(chan any, 64)
	handler := sys.Root.Spawn(forwarder(t, events))
	subscribers := sys.EventStream.Length()
	logs := make(logSink, 256)
	rt := Runtime{System: sys, Logger: slog.New(slog.NewTextHandler(logs, nil))}

	r := newRecorder(t)
	s := r.startServer(func(o *ServerOptions) {
		o.Runtime, o.Handler = rt, handler
		// No credit comes back from a dead handler: a read window wider
		// than the reads of the 50 tokens below keeps the connection
		// reading, so that it sees the client's close, and then it waits
		// for the credit this long, not the default 5 s.
		o.Limits.ReadWindow = 64
		o.Limits.CloseTimeout = 100 * time.Millisecond
	})
	r.next("connect", ONLINE)
	_, ok := recv(t, events, "Listening").(*Listening)
	require.True(t, ok)
	up := make(chan struct{}, 1)
	c, err := NewClient(ClientOptions{Host: "127.0.0.1", Port: s.Addr().(*net.TCPAddr).Port,
		TLS: testCerts(t).ClientOptions(), Runtime: rt, Handler: handler,
		OnConnect: func() { put(t, up, struct{}{}) }})
	require.NoError(t, err)
	t.Cleanup(func() { shutdownWithin(t, "client", c.Shutdown) })
	recv(t, up, "the client's connect event")
	r.next("conn", ONLINE)

	require.NoError(t, sys.Root.StopFuture(handler).Wait())
	for i := range 50 { // each a TokenReceived for the server's handler
		require.True(t, c.Send(numbered(uint64(i), 16)))
	}
	shutdownWithin(t, "client", c.Shutdown) // Closed events for both
	r.next("connClose", -1)
	shutdownWithin(t, "server", s.Shutdown)

	var server, client []string
	for len(logs) > 0 {
		line := <-logs
		switch {
		case !strings.Contains(line, "dead letters"):
		case strings.Contains(line, "owner=server"):
			server = append(server, line)
		case strings.Contains(line, "owner=client"):
			client = append(client, line)
		}
	}
	require.Len(t, server, 1, "the server's dead-letter log lines")
	require.Len(t, client, 1, "the client's dead-letter log lines")
	for _, line := range append(server, client...) {
		require.Contains(t, line, "Runtime.System")
		require.Contains(t, line, "*actor.DeadLetterEvent")
		require.Contains(t, line, "handler="+handler.Address+"/"+handler.Id)
	}
	require.Equal(t, subscribers, sys.EventStream.Length(), "event stream subscribers after Shutdown")
}
