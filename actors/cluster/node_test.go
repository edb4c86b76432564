package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
)

const nodeName = "node.tokens.test"

// nodeLeaf issues, under the CA of d, a certificate for both server and
// client authentication, valid for 127.0.0.1 and naming dns and uris in its
// subjectAltName: a node's certificate when it carries a node name.
func nodeLeaf(t *testing.T, d *tlsio.DevCerts, dns []string, uris ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	ca, err := tls.X509KeyPair(d.CACert, d.CAKey) // Leaf is set
	require.NoError(t, err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:    dns,
	}
	for _, u := range uris {
		parsed, err := url.Parse(u)
		require.NoError(t, err)
		tmpl.URIs = append(tmpl.URIs, parsed)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Leaf, &key.PublicKey, ca.PrivateKey)
	require.NoError(t, err)
	k, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k})
}

func devCerts(t *testing.T) *tlsio.DevCerts {
	t.Helper()
	d, err := tlsio.GenerateDevCerts()
	require.NoError(t, err)
	return d
}

// node is a gRPC server on 127.0.0.1 with the server options of a remote
// configuration: Proto.Actor's own remote, with a probe actor named
// "probe", or stubRemoting. The Id of each PID delivered to the probe (or
// the stub) goes to got.
type node struct {
	addr  string
	probe *actor.PID
	got   chan string
	stop  func()
}

// startRemote starts Proto.Actor's remote with cfg. Only one per test
// process: remote.Start sets gRPC's global logger (grpclog.SetLoggerV2),
// which races under -race with every gRPC goroutine already running, even
// another remote's Serve.
func startRemote(cfg *remote.Config) (*node, error) {
	system := actors.NewQuietSystem()
	r := remote.NewRemote(system, cfg)
	r.Start()
	n := &node{addr: system.Address(), got: make(chan string, 16), stop: func() {
		r.Shutdown(false)
		system.Shutdown()
	}}
	probe, err := system.Root.SpawnNamed(actor.PropsFromFunc(func(c actor.Context) {
		if m, ok := c.Message().(*actor.PID); ok {
			n.got <- m.Id
		}
	}), "probe")
	n.probe = probe
	return n, err
}

// stubRemoting stands in for Proto.Actor's Remoting service where a test
// needs several nodes: the same RPCs, ListProcesses and
// GetProcessDiagnostics that panic as Proto.Actor's do, a Receive that
// answers a ConnectRequest and delivers a batch's first message, indexing
// its targets as Proto.Actor's reader does.
type stubRemoting struct {
	remote.UnimplementedRemotingServer
	got chan string
}

func (s *stubRemoting) ListProcesses(context.Context, *remote.ListProcessesRequest) (*remote.ListProcessesResponse, error) {
	panic("implement me")
}

func (s *stubRemoting) GetProcessDiagnostics(context.Context, *remote.GetProcessDiagnosticsRequest) (*remote.GetProcessDiagnosticsResponse, error) {
	panic("implement me")
}

func (s *stubRemoting) Receive(stream remote.Remoting_ReceiveServer) error {
	for {
		msg, err := stream.Recv()
		if err != nil {
			return nil
		}
		switch m := msg.MessageType.(type) {
		case *remote.RemoteMessage_ConnectRequest:
			if err := stream.Send(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_ConnectResponse{
				ConnectResponse: &remote.ConnectResponse{MemberId: "stub"}}}); err != nil {
				return err
			}
		case *remote.RemoteMessage_MessageBatch:
			for _, env := range m.MessageBatch.Envelopes {
				_ = m.MessageBatch.Targets[env.Target] // panics as Proto.Actor's reader
				v, err := remote.Deserialize(env.MessageData, m.MessageBatch.TypeNames[env.TypeId], env.SerializerId)
				if err != nil {
					return err
				}
				if pid, ok := v.(*actor.PID); ok {
					s.got <- pid.Id
				}
			}
		}
	}
}

// startStub serves stubRemoting with cfg's server options.
func startStub(cfg *remote.Config) (*node, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	stub := &stubRemoting{got: make(chan string, 16)}
	srv := grpc.NewServer(cfg.ServerOptions...)
	remote.RegisterRemotingServer(srv, stub)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	return &node{addr: ln.Addr().String(), probe: actor.NewPID(ln.Addr().String(), "probe"), got: stub.got, stop: func() {
		srv.Stop()
		<-served
	}}, nil
}

// The nodes of the tests, started at once, before any gRPC call (see
// startRemote); TestMain stops them.
type testNodes struct {
	// real is Proto.Actor's remote with NodeNames (a DNS name, one CA for
	// nodes and token clients); the others are stubs: plain (plaintext),
	// ownCA (a CA of the nodes' own), uri (NodeNames, a URI, one CA).
	real, plain, ownCA, uri *node
	clients, other          *tlsio.DevCerts // the token clients' CA; an unrelated CA
	// The certificate and key of each TLS node (it presents them both ways).
	certs map[*node][2][]byte
	// dialer is the remote config of real, for dialing.
	dialer *remote.Config
}

var (
	nodesOnce sync.Once
	nodes     *testNodes
	nodesErr  error
)

func sharedNodes(t *testing.T) *testNodes {
	t.Helper()
	nodesOnce.Do(func() { nodes, nodesErr = startTestNodes(t) })
	require.NoError(t, nodesErr)
	return nodes
}

func stopTestNodes() {
	if nodes == nil {
		return
	}
	for _, n := range []*node{nodes.real, nodes.plain, nodes.ownCA, nodes.uri} {
		if n != nil {
			n.stop()
		}
	}
}

func startTestNodes(t *testing.T) (*testNodes, error) {
	tn := &testNodes{clients: devCerts(t), other: devCerts(t), certs: map[*node][2][]byte{}}
	start := func(nodeTLS *NodeTLS, run func(*remote.Config) (*node, error)) (*node, *remote.Config, error) {
		cfg, err := RemoteConfig("127.0.0.1", 0, nodeTLS)
		if err != nil {
			return nil, nil, err
		}
		n, err := run(cfg)
		if err == nil && nodeTLS != nil {
			tn.certs[n] = [2][]byte{nodeTLS.Server.Cert, nodeTLS.Server.Key}
		}
		return n, cfg, err
	}
	withCert := func(ca *tlsio.DevCerts, cert, key []byte) NodeTLS {
		return NodeTLS{
			Server: tlsio.Options{Key: key, Cert: cert, CA: ca.CACert, RequestCert: true},
			Client: tlsio.Options{Key: key, Cert: cert, CA: ca.CACert},
		}
	}
	var err error
	cert, key := nodeLeaf(t, tn.clients, []string{"NODE.tokens.test"})
	dns := withCert(tn.clients, cert, key)
	dns.NodeNames = []string{"other.test", nodeName}
	if tn.real, tn.dialer, err = start(&dns, startRemote); err != nil {
		return tn, err
	}
	if tn.plain, _, err = start(nil, startStub); err != nil {
		return tn, err
	}
	nodeCA := devCerts(t)
	cert, key = nodeLeaf(t, nodeCA, nil)
	own := withCert(nodeCA, cert, key)
	own.OwnCA = true
	if tn.ownCA, _, err = start(&own, startStub); err != nil {
		return tn, err
	}
	cert, key = nodeLeaf(t, tn.clients, nil, "spiffe://tokens.test/node")
	uri := withCert(tn.clients, cert, key)
	uri.NodeNames = []string{"spiffe://tokens.test/node"}
	tn.uri, _, err = start(&uri, startStub)
	return tn, err
}

// client is a gRPC connection to a node's Remoting service, as anyone may
// open one: with creds (nil: plaintext).
func (n *node) client(t *testing.T, creds credentials.TransportCredentials) remote.RemotingClient {
	t.Helper()
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	cc, err := grpc.Dial(n.addr, grpc.WithTransportCredentials(creds))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	return remote.NewRemotingClient(cc)
}

// attackerTLS presents certPEM and keyPEM and trusts any server.
func attackerTLS(t *testing.T, certPEM, keyPEM []byte) credentials.TransportCredentials {
	t.Helper()
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(t, err)
	return credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true})
}

// inject opens the Receive stream, introduces itself as a node and sends
// the probe a PID whose Id is marker. It returns the first error.
func (n *node) inject(ctx context.Context, c remote.RemotingClient, marker string) error {
	stream, err := c.Receive(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = stream.CloseSend() }()
	if err := stream.Send(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_ConnectRequest{
		ConnectRequest: &remote.ConnectRequest{ConnectionType: &remote.ConnectRequest_ServerConnection{
			ServerConnection: &remote.ServerConnection{SystemId: "intruder", Address: "127.0.0.1:1"}}}}}); err != nil {
		return err
	}
	if _, err := stream.Recv(); err != nil { // the ConnectResponse
		return err
	}
	data, typeName, err := remote.Serialize(&actor.PID{Address: "nowhere", Id: marker}, 0)
	if err != nil {
		return err
	}
	return stream.Send(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_MessageBatch{MessageBatch: &remote.MessageBatch{
		TypeNames: []string{typeName}, Targets: []*actor.PID{n.probe},
		Envelopes: []*remote.MessageEnvelope{{MessageData: data}},
	}}})
}

// mustDeliver injects a message and waits for the probe to get it: the
// node serves its Receive stream.
func (n *node) mustDeliver(t *testing.T, c remote.RemotingClient, marker string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	require.NoError(t, n.inject(ctx, c, marker))
	select {
	case m := <-n.got:
		require.Equal(t, marker, m)
	case <-ctx.Done():
		t.Fatalf("the probe did not get %q", marker)
	}
}

// mustSurvive calls what Proto.Actor's remote implements as
// panic("implement me") and sends a message batch that makes its reader
// index out of range: the node refuses the first two, ends the stream of
// the third with codes.Internal, and still delivers a message afterwards.
func (n *node) mustSurvive(t *testing.T, c remote.RemotingClient) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	list, diag := "/remote.Remoting/ListProcesses", "/remote.Remoting/GetProcessDiagnostics"
	refused, panicked := guardLog.count(slog.LevelWarn, list), guardLog.count(slog.LevelError, receiveMethod)
	_, err := c.ListProcesses(ctx, &remote.ListProcessesRequest{})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "ListProcesses: %v", err)
	require.Equal(t, refused+1, guardLog.count(slog.LevelWarn, list), "the refusal is logged")
	refused = guardLog.count(slog.LevelWarn, diag)
	_, err = c.GetProcessDiagnostics(ctx, &remote.GetProcessDiagnosticsRequest{Pid: n.probe})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "GetProcessDiagnostics: %v", err)
	require.Equal(t, refused+1, guardLog.count(slog.LevelWarn, diag), "the refusal is logged")

	stream, err := c.Receive(ctx)
	require.NoError(t, err)
	require.NoError(t, stream.Send(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_MessageBatch{MessageBatch: &remote.MessageBatch{
		TypeNames: []string{"actor.PID"},
		Envelopes: []*remote.MessageEnvelope{{Target: 3}}, // no targets at all
	}}}))
	_, err = stream.Recv()
	require.Equal(t, codes.Internal, status.Code(err), "a malformed batch: %v", err)
	require.Equal(t, panicked+1, guardLog.count(slog.LevelError, receiveMethod), "the panic is logged")

	n.mustDeliver(t, c, "after-the-panics")
}

// guardLog records what the guard logs through slog.Default(); TestMain
// installs it.
var guardLog = &recorder{}

type recorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec.Clone())
	return nil
}

// count is the number of records at level whose method attribute is
// method.
func (r *recorder) count(level slog.Level, method string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, rec := range r.recs {
		rec.Attrs(func(a slog.Attr) bool {
			if rec.Level == level && a.Key == "method" && a.Value.String() == method {
				n++
			}
			return true
		})
	}
	return n
}

// With plaintext between nodes (loopback only), the gRPC server still
// refuses what nodes never call and survives a panicking handler. (The
// same with Proto.Actor's remote: test/cluster, with --plaintext-nodes.)
func TestPlaintextNodeSurvivesBadCalls(t *testing.T) {
	n := sharedNodes(t).plain
	n.mustSurvive(t, n.client(t, nil))
}

// A node configured either way (a CA of the nodes' own; one CA and a node
// name, DNS or URI) refuses a token client's certificate and one from
// another CA, at the TLS handshake: nothing reaches the Remoting service,
// so no actor message can be injected. A node certificate is served, but
// only the Receive stream, and a panic in it does not end the node.
func TestNodeRefusesNonNodeCertificates(t *testing.T) {
	tn := sharedNodes(t)
	otherCert, otherKey := nodeLeaf(t, tn.other, []string{nodeName}, "spiffe://tokens.test/node")
	for name, n := range map[string]*node{"Proto.Actor, one CA, a node DNS name": tn.real, "own CA": tn.ownCA, "one CA, a node URI": tn.uri} {
		t.Run(name, func(t *testing.T) {
			for _, a := range []struct {
				name      string
				cert, key []byte
			}{
				{"a token client's certificate", tn.clients.ClientCert, tn.clients.ClientKey},
				{"a certificate from another CA", otherCert, otherKey},
			} {
				c := n.client(t, attackerTLS(t, a.cert, a.key))
				ctx, cancel := context.WithTimeout(context.Background(), deadline)
				_, err := c.ListProcesses(ctx, &remote.ListProcessesRequest{})
				require.Equal(t, codes.Unavailable, status.Code(err), "%s: ListProcesses: %v", a.name, err)
				_, err = c.GetProcessDiagnostics(ctx, &remote.GetProcessDiagnosticsRequest{})
				require.Equal(t, codes.Unavailable, status.Code(err), "%s: GetProcessDiagnostics: %v", a.name, err)
				err = n.inject(ctx, c, "injected")
				require.Equal(t, codes.Unavailable, status.Code(err), "%s: Receive: %v", a.name, err)
				cancel()
			}
			// A node's certificate is served: the same calls, refused or
			// recovered, and delivery goes on. The probe got nothing else.
			kp := tn.certs[n]
			n.mustSurvive(t, n.client(t, attackerTLS(t, kp[0], kp[1])))
			select {
			case m := <-n.got:
				t.Fatalf("the probe got %v", m)
			default:
			}
		})
	}
}

// A node with NodeNames does not talk to a server whose certificate, from
// the same CA and valid for the host, carries no node name; it talks to
// one that does.
func TestNodeDialsOnlyNodes(t *testing.T) {
	tn := sharedNodes(t)
	// A gRPC server with the CA's plain server certificate (localhost,
	// 127.0.0.1; no node name) that accepts the node's certificate.
	srvTLS, err := tlsio.ServerConfig(tn.clients.ServerOptions())
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(srvTLS)))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() { srv.Stop(); require.NoError(t, <-served) }()

	call := func(addr string) error {
		cc, err := grpc.Dial(addr, tn.dialer.DialOptions...)
		require.NoError(t, err)
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		_, err = remote.NewRemotingClient(cc).ListProcesses(ctx, &remote.ListProcessesRequest{})
		return err
	}
	err = call(ln.Addr().String())
	require.Equal(t, codes.Unavailable, status.Code(err), "a server without a node name: %v", err)
	// The same dial options reach a node: its guard answers.
	err = call(tn.real.addr)
	require.Equal(t, codes.PermissionDenied, status.Code(err), "a node: %v", err)
}

// NodeTLS must say how a node's certificate differs from a token client's.
func TestRemoteOptionsNeedNodeIdentity(t *testing.T) {
	d := devCerts(t)
	base := NodeTLS{Server: d.ServerOptions(), Client: d.ClientOptions()}
	_, err := base.RemoteOptions()
	require.ErrorIs(t, err, ErrInvalidNode)
	_, err = RemoteConfig("127.0.0.1", 0, &base)
	require.ErrorIs(t, err, ErrInvalidNode)
	blank := base
	blank.NodeNames = []string{nodeName, " "}
	_, err = blank.RemoteOptions()
	require.ErrorIs(t, err, ErrInvalidNode)
	own := base
	own.OwnCA = true
	opts, err := own.RemoteOptions()
	require.NoError(t, err)
	require.NotEmpty(t, opts)
	// A user's WithServerOptions, which replaces the list, given before
	// does not drop the credentials or the guard: four server options.
	cfg, err := RemoteConfig("127.0.0.1", 0, &own, remote.WithServerOptions(grpc.MaxRecvMsgSize(1<<20)))
	require.NoError(t, err)
	require.Len(t, cfg.ServerOptions, 4)
}
