// Package cluster puts the token server on Proto.Actor's cluster: front
// nodes own the clients' TLS sockets and route each connection's tokens to
// a handler grain, a Proto.Actor virtual actor on a handler node, whose
// identity comes from the client's verified certificate.
//
// Handler nodes register the grain kind, with your [Handler]; front nodes
// register none, and run a token server whose handler is the front's
// router. Nodes talk over Proto.Actor's remote with mutual TLS
// ([RemoteConfig], [NodeTLS]):
//
//	rc, err := cluster.RemoteConfig(host, remotePort, &nodeTLS)
//
//	// A handler node: one grain per client identity.
//	kind := cluster.NewKind("tokens", func(identity string) cluster.Handler {
//		return cluster.HandlerFunc(func(t *cluster.Token) { t.Reply(t.Data) })
//	})
//	c := pcluster.New(system, pcluster.Configure("name", provider, lookup, rc, pcluster.WithKinds(kind)))
//	c.StartMember()
//
//	// A front node.
//	c := pcluster.New(system, pcluster.Configure("name", provider, lookup, rc))
//	c.StartMember()
//	front, err := cluster.NewFront(cluster.FrontOptions{Cluster: c, Kind: "tokens"})
//	opts, err := front.ServerOptions(actors.ServerOptions{Port: 8000, TLS: serverTLS})
//	server, err := actors.NewServer(opts)
//
// pcluster is github.com/asynkron/protoactor-go/cluster; the cluster
// provider (consul, etcd, Kubernetes, automanaged...) and the identity
// lookup are yours. examples/cluster runs both roles.
//
// # Shape
//
//	client --TLS-- front node: connection actor -> server actor -> router
//	                                                  | TokenBatch(es) (protobuf, mutual TLS)
//	                                                  v
//	                                handler node: grain (your Handler)
//	                                                  | Credit(s): replies, credit
//	                                                  v
//	               front node: router -> replies and actors.Credit -> connection actor
//
// On a front node, NewFront starts the router and Front.ServerOptions makes
// it the token server's handler PID. On handler nodes, NewKind registers the
// grain kind (cluster.WithKinds); a front registers no kind, so it hosts no
// grain. RemoteConfig builds Proto.Actor's remote configuration with mutual
// TLS between nodes from tlsio options. The cluster provider (consul, etcd,
// Kubernetes, automanaged...) and the identity lookup are the user's.
//
// # Nodes and token clients
//
// A node's gRPC port (Proto.Actor's remote) takes any actor message for any
// actor of the node from whoever it accepts, so a token client must never
// be accepted there: NodeTLS tells node certificates from client
// certificates, either by a CA of the nodes' own (NodeTLS.OwnCA: the nodes
// trust only that CA, which signs nothing else; examples/cluster does this,
// with --node-certs beside --certs) or, when one CA signs both, by names
// that only node certificates carry (NodeTLS.NodeNames, checked in
// VerifyConnection both ways). RemoteOptions refuses a NodeTLS that does
// neither. Every node's gRPC server also gets ServerGuard's interceptors,
// with TLS or plaintext (loopback only): only Proto.Actor's Receive stream
// is served (a node never calls its ListProcesses or
// GetProcessDiagnostics, which panic in this Proto.Actor version), and a
// panic in a handler ends that call with codes.Internal, not the process.
//
// # Delivery
//
// The router numbers each connection's batches and keeps them until the
// grain's Credit comes. When a grain is lost (its PID terminates, its member
// leaves the topology, or no Credit comes within FrontOptions.AckTimeout),
// it looks the grain up again on a goroutine of its own (Proto.Actor's
// lookups block), starting afresh whenever the membership changes, and sends
// the outstanding batches again to the new activation. A grain handles each
// (connection, sequence) once and answers a repeat with the Credit it gave
// the first time; replies travel in the Credit, so that each token is
// answered once. A token that a dead node handled without answering is
// handled again by the new activation.
//
// When a front node dies, its clients reconnect to another front. A token/2
// client's session outlives its connections: it sends again, through the new
// front, every token the dead one had not acknowledged (a front acknowledges
// a token once the grain's Credit for it came and its replies were written),
// flagged redelivered. The front forwards each token's session (bound to the
// client certificate's key) and number; the grain keeps, per session, the
// numbers it handled and drops a repeat. Replies: a front writes nothing on
// a token/2 connection but the grain's replies, and a front new to a session
// numbers its data frames on from what the client had received
// (Connected.PeerReceived), so the grain numbers a session's replies as the
// client receives them. It sends them through the session's newest
// connection only (those of tokens that still come through an older one
// included), keeps those the client has not acknowledged, and, when the
// session comes to a connection it has not seen (whose first batch, without
// tokens, says what the client had received), sends there the ones after
// that, in order, ahead of anything new. The front writes each number once.
// Each token is handled once and each reply arrives once (GrainOptions bounds
// what is kept). A handler that answers later sends its ReplyBatch to the
// grain (Token.Grain), which numbers it with the others. A token/1 client
// has no session: what the dead front held is lost.
//
// # Flow control
//
// The router returns a connection's flow-control credit (actors.Credit) for
// the tokens of a batch only when the grain's Credit for it arrives: a slow
// grain stops its connections from reading after actors.Limits.ReadWindow
// chunks, and TCP pushes back on the clients.
//
// # Messages
//
// Package clusterpb holds the protobuf messages between nodes
// (tokens.proto; `make proto` regenerates the committed Go code).
package cluster
