//go:build linux

package cluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
)

// What a peer of a node's gRPC port (Proto.Actor's remote) can do, tried
// with Proto.Actor's own gRPC client on the example's nodes, as an intruder
// would: a token client's certificate, one from another CA, and a node's
// own certificate (or none, between plaintext nodes).

// remoteAddr is the node's remote (gRPC) address, from its "joined the
// cluster at ADDR" line.
func (n *node) remoteAddr(t *testing.T) string {
	t.Helper()
	line := n.waitLine(t, "joined the cluster at ", 30*time.Second)
	_, rest, _ := strings.Cut(line, "joined the cluster at ")
	addr, _, _ := strings.Cut(rest, " ")
	return addr
}

// remoting dials the Remoting service at addr with creds (nil: plaintext).
func remoting(t *testing.T, addr string, creds credentials.TransportCredentials) remote.RemotingClient {
	t.Helper()
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	cc, err := grpc.Dial(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return remote.NewRemotingClient(cc)
}

// intruder presents the key pair of o and trusts any server.
func intruder(t *testing.T, o tlsio.Options) credentials.TransportCredentials {
	t.Helper()
	cert, err := tls.X509KeyPair(o.Cert, o.Key)
	if err != nil {
		t.Fatal(err)
	}
	return credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true})
}

// sendActorMessage opens the Receive stream of the node at addr, says it is
// a node, and sends an actor message (a PID whose Id is marker) to the
// actor named marker there, which does not exist: the node logs it as a
// dead letter (at --log-level info). It returns the member id the node
// answered with, or the first error.
func sendActorMessage(ctx context.Context, c remote.RemotingClient, addr, marker string) (string, error) {
	stream, err := c.Receive(ctx)
	if err != nil {
		return "", err
	}
	defer func() { _ = stream.CloseSend() }()
	if err := stream.Send(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_ConnectRequest{
		ConnectRequest: &remote.ConnectRequest{ConnectionType: &remote.ConnectRequest_ServerConnection{
			ServerConnection: &remote.ServerConnection{SystemId: "intruder", Address: "127.0.0.1:1"}}}}}); err != nil {
		return "", err
	}
	resp, err := stream.Recv()
	if err != nil {
		return "", err
	}
	data, typeName, err := remote.Serialize(&actor.PID{Address: "intruder", Id: marker}, 0)
	if err != nil {
		return "", err
	}
	err = stream.Send(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_MessageBatch{MessageBatch: &remote.MessageBatch{
		TypeNames: []string{typeName}, Targets: []*actor.PID{actor.NewPID(addr, marker)},
		Envelopes: []*remote.MessageEnvelope{{MessageData: data}},
	}}})
	return resp.GetConnectResponse().GetMemberId(), err
}

// stderrHas waits up to within for s in the node's stderr.
func (n *node) stderrHas(s string, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for {
		b, _ := os.ReadFile(n.stderr)
		if strings.Contains(string(b), s) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond) // polling a file, bounded by the deadline
	}
}

// ask sends token through the front at addr on a fresh connection and
// returns the reply.
func (e *env) ask(t *testing.T, addr, token string) (string, error) {
	t.Helper()
	replies := make(chan string, 1)
	cl := e.connect(t, addr, actors.ClientOptions{OnToken: func(tok []byte, _ *actors.Connection) {
		select {
		case replies <- string(tok):
		default:
		}
	}})
	if !cl.Send([]byte(token)) {
		return "", fmt.Errorf("Send(%q) refused", token)
	}
	select {
	case r := <-replies:
		return r, nil
	case <-time.After(20 * time.Second):
		return "", fmt.Errorf("no reply to %q through %s within 20 s", token, addr)
	}
}

// serving checks that the handler node h is still running and answers a
// token through the front at listen.
func (e *env) serving(t *testing.T, h *node, listen, after string) {
	t.Helper()
	r, err := e.ask(t, listen, "still there?")
	if h.exited() {
		t.Fatalf("handler node %s died after %s; its stderr ends with:\n%s", h.name, after, h.tail())
	}
	if err != nil || r != "still there? @"+h.name {
		t.Fatalf("after %s: reply %q, %v", after, r, err)
	}
}

// A token client's certificate, and one from another CA, are refused at
// the TLS handshake by a node's gRPC port: the Receive stream that carries
// every actor message does not open (so nothing can be injected), and
// ListProcesses and GetProcessDiagnostics, which panic in Proto.Actor, are
// never reached. The handler node still serves afterwards.
func TestNodeRefusesTokenClients(t *testing.T) {
	e := newEnv(t, 2)
	listen := "127.0.0.1:" + strconv.Itoa(freePorts(t, 1)[0])
	h1 := e.start("handler", "h1")
	f1 := e.start("front", "f1", "--listen", listen)
	f1.waitLine(t, "listening on", 30*time.Second)
	addr := h1.remoteAddr(t)
	other, err := tlsio.GenerateDevCerts()
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range []struct {
		name string
		opts tlsio.Options
	}{
		{"a token client's certificate", e.certs.ClientOptions()},
		{"a certificate from another CA", other.ClientOptions()},
	} {
		c := remoting(t, addr, intruder(t, a.opts))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		marker := fmt.Sprintf("injected-by-intruder-%d", i)
		member, err := sendActorMessage(ctx, c, addr, marker)
		if err == nil {
			t.Errorf("%s opened h1's Receive stream (h1 answered as member %s) and sent an actor message", a.name, member)
			if h1.stderrHas(marker, 5*time.Second) {
				t.Errorf("%s: the message reached h1's actor system (dead letter to %s in h1's log)", a.name, marker)
			}
		} else if status.Code(err) != codes.Unavailable {
			t.Errorf("%s: Receive: %v, want the handshake refused (Unavailable)", a.name, err)
		}
		_, err = c.ListProcesses(ctx, &remote.ListProcessesRequest{})
		if status.Code(err) != codes.Unavailable {
			t.Errorf("%s: ListProcesses: %v, want the handshake refused (Unavailable)", a.name, err)
		}
		_, err = c.GetProcessDiagnostics(ctx, &remote.GetProcessDiagnosticsRequest{})
		if status.Code(err) != codes.Unavailable {
			t.Errorf("%s: GetProcessDiagnostics: %v, want the handshake refused (Unavailable)", a.name, err)
		}
		cancel()
		e.serving(t, h1, listen, a.name)
	}
}

// From a valid node identity (the nodes' own certificate, or anyone between
// plaintext nodes on loopback), ListProcesses and GetProcessDiagnostics are
// refused (PermissionDenied) instead of panicking in Proto.Actor, and a
// message batch that makes Proto.Actor's reader panic ends only its stream
// (Internal, and the node logs it): the node still serves.
func TestNodeSurvivesBadCalls(t *testing.T) {
	for _, plaintext := range []bool{false, true} {
		t.Run(map[bool]string{false: "node certificate", true: "plaintext nodes"}[plaintext], func(t *testing.T) {
			e := newEnv(t, 2)
			e.plaintext = plaintext
			listen := "127.0.0.1:" + strconv.Itoa(freePorts(t, 1)[0])
			h1 := e.start("handler", "h1")
			f1 := e.start("front", "f1", "--listen", listen)
			f1.waitLine(t, "listening on", 30*time.Second)
			var creds credentials.TransportCredentials
			if !plaintext {
				creds = intruder(t, e.nodeCerts.ClientOptions())
			}
			c := remoting(t, h1.remoteAddr(t), creds)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := c.ListProcesses(ctx, &remote.ListProcessesRequest{})
			if status.Code(err) != codes.PermissionDenied {
				t.Errorf("ListProcesses: %v, want PermissionDenied", err)
			}
			e.serving(t, h1, listen, "ListProcesses")
			_, err = c.GetProcessDiagnostics(ctx, &remote.GetProcessDiagnosticsRequest{})
			if status.Code(err) != codes.PermissionDenied {
				t.Errorf("GetProcessDiagnostics: %v, want PermissionDenied", err)
			}
			e.serving(t, h1, listen, "GetProcessDiagnostics")

			stream, err := c.Receive(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := stream.Send(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_MessageBatch{MessageBatch: &remote.MessageBatch{
				TypeNames: []string{"actor.PID"},
				Envelopes: []*remote.MessageEnvelope{{Target: 3}}, // no targets at all
			}}}); err != nil {
				t.Fatal(err)
			}
			if _, err := stream.Recv(); status.Code(err) != codes.Internal {
				t.Errorf("a malformed batch: %v, want Internal", err)
			}
			e.serving(t, h1, listen, "a malformed message batch")
			if !h1.stderrHas("index out of range", 5*time.Second) {
				t.Errorf("h1 did not log the panic; its stderr ends with:\n%s", h1.tail())
			}
		})
	}
}
