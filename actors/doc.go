// Package actors runs token servers and clients: byte strings ("tokens")
// sent both ways over mutually authenticated TLS, with the wire format and
// the API of npm token-server 1.0.10, on Proto.Actor.
//
// [NewServer] listens, [NewClient] connects, [NewConnection] wraps any
// net.Conn; each returns a handle ([Server], [Client], [Connection]) whose
// methods never block on the network. TLS options come from package tlsio
// (tlsio.LoadServerFiles for a server, tlsio.LoadFiles for a client,
// tlsio.GenerateDevCerts to try it). An echo server, and a client that
// sends once connected:
//
//	server, err := actors.NewServer(actors.ServerOptions{
//		Host: "127.0.0.1", Port: 8000, TLS: serverTLS,
//		OnToken: func(token []byte, c *actors.Connection) { c.Send(token) },
//	})
//	...
//	defer server.Shutdown(ctx)
//
//	connected := make(chan struct{})
//	client, err := actors.NewClient(actors.ClientOptions{
//		Host: "127.0.0.1", Port: 8000, TLS: clientTLS,
//		OnConnect: func() { close(connected) },
//		OnToken:   func(token []byte, _ *actors.Connection) { fmt.Printf("%q\n", token) },
//	})
//	...
//	defer client.Shutdown(ctx)
//	<-connected // until then Send returns false, as in the original
//	client.Send([]byte("hello"))
//
// Beyond callbacks: a service that is an actor sets ServerOptions.Handler
// (or ClientOptions.Handler) to a PID of its actor system, given as
// Runtime.System; it receives the event messages ([Listening], [Connected],
// [TokenReceived], [Closed]...), replies with [SendToken], and returns
// [Credit] ([HandlerProps] does it). ClientOptions.Reconnect turns on
// supervised reconnection with a buffer ([DefaultReconnect]); [Limits]
// bound each connection; Stats and Runtime.MeterProvider count. The
// examples below run each of these.
//
// # Protocols
//
// Two peers of this package speak token/2 (wire/TOKEN2.md), chosen by ALPN:
// every token is acknowledged once the other side's handler took it, and a
// client's session survives its connections, so that a connection that
// resets loses nothing: each side sends again, once, what the other did not
// get (exactly once, in order, both ways, while both processes stay up; at
// least once, the repeats flagged Redelivered, when a server process
// restarts). Everyone else, the Node original first of all, speaks token/1
// exactly as npm token-server does. ServerOptions.Protocols and
// ClientOptions.Protocols restrict the choice; Connection.Protocol says it.
//
// # Guarantees
//
// Handle methods never block on the network. Events of one connection arrive
// in order and never concurrently with each other. An error event is always
// followed by a close event with hadError set, except ErrHandlerPanic: a
// callback that panicked is reported and the connection goes on. The tokens
// read before a failure are delivered before its error event.
//
// # Flow control
//
// Past Limits.HighWaterMark bytes waiting to be written, a connection stops
// reading, so TCP pushes back on a peer that sends faster than it reads; under
// Limits.LowWaterMark it reads again and emits a drain event. Only a peer that
// reads nothing for Limits.WriteTimeout, or whose queue reaches
// Limits.MaxQueue, is cut (ErrSlowConsumer). At most Limits.ReadWindow read
// chunks wait for the handler; a handler PID returns Credit for each
// TokenReceived (CreditMiddleware). Every token Send took is written or
// reported (OnDropped, TokensDropped).
//
// # Observing
//
// Server.Stats and Client.Stats return what each has counted, among which
// the causes of failed handshakes and dials: atomic counters, one add per
// event, read chunk or write batch. With Runtime.MeterProvider the same
// counts are OpenTelemetry metrics, read by one callback when the provider
// collects.
//
// # Inside: the actors
//
// Every socket is owned by exactly one connection actor (conn_actor.go, its
// end in conn_end.go, its read side in conn_read.go, its write side in
// conn_write.go). Two small goroutines, the pumps from package tlsio, do the
// blocking reads and writes and talk to the actor through its mailbox. The
// connection actor speaks the wire protocol its TLS handshake negotiated, a
// codec of package wire (token/1 for a peer without ALPN); it hands the
// frames of each read to its owner, the server actor (server_actor.go) or
// the client actor (client_actor.go), which delivers them to the user
// through one event path (emitter.go): callbacks in the options, and
// plain-data messages (events.go) to a handler PID.
//
//	user callbacks / handler PID
//	        ^ events                 ^ Credit, SendToken (handler PID)
//	server actor ----- accepts ------|------ listener actor (+ supervisor)
//	client actor ----- supervisor ---|------ restarts connection actors
//	        ^ frames of a read       v
//	connection actor -- read pump  <- conn.Read
//	                 -- write pump -> conn.Write (coalesced)
//
// token/2 (conn_session.go) numbers the data frames, keeps the written ones
// until acknowledged, and ends with END; a server's session outlives its
// socket in its connection actor (phaseSuspended), which adopts the socket
// of its client's next connection (server_sessions.go decides every HELLO);
// a client's session goes from one connection actor to the next through the
// client actor (session.go).
//
// On token/1 a large token is escaped and written in pieces
// (conn_pieces.go): the actor escapes the next piece while the write pump
// writes the last, and the frames sent after it wait until its last piece
// is written, so that nothing comes between its pieces.
//
// A token takes two hops to the user: connection actor, then its owner. The
// server's listener is a listener actor (listener.go), under a supervisor
// when ServerOptions.ListenRetry is set; a client's connection actor dials
// itself, under a supervisor when ClientOptions.Reconnect is set. The
// runtime's own messages are in messages.go, by direction. Machinery that
// knows nothing of the handles lives in packages under actors/internal:
// dispatch (how the actors run), framepool and outbox (the write side's
// buffers and queue), timer (the one timer of every actor here), serverlist
// and reconnectbuf (a client's server list and reconnect buffer). Stats
// come from stats.go (the counters in counters.go, the causes of failed
// handshakes and dials in causes.go), the OpenTelemetry metrics from
// metrics.go, and the handler PID's check and dead-letter watch from
// handlerpid.go.
//
// # Inside: where the actors run
//
// Server, client and standalone owner actors run on goroutines that live (a
// worker pool per handle), or on the read pump whose chunk woke them: a
// read pump offers itself to the owner's pool around each chunk it posts
// (dispatch.Helper), so that on a round trip no other thread is woken to
// run the owner. Connection actors run inline, on the goroutine that sends
// to them (package dispatch says why). A connection actor therefore never
// blocks: what may block on the network (the shut of our side of a socket)
// runs on a goroutine of its own. While its read pump runs the owner, a
// connection actor writes a small batch on that pump at once when the
// socket's send queue is empty (tlsio.WritePump.WriteNow: such a write does
// not block), rather than hand it to the write pump: a round trip on one
// connection then wakes no other goroutine at all.
//
// So user callbacks run on the owner's workers or on read pumps, one at a
// time as before, never on a goroutine of the user's (Close, Send) and never
// inside a connection actor's message. A callback that blocks keeps its
// owner from every other event, as it always did, and now may also keep the
// connection whose read pump runs it from reading meanwhile.
//
// # Inside: the state a handle and its actor share
//
// Each piece of state has one owner. The server and client actors make every
// status transition (status.go has the tables); the handles read the status
// and leave requests (Close, Connect), which the actors take. No mutex is
// shared between actors. A handle and its own actor share the atomics below,
// and nothing else; each has one writer per direction, or is a counter that
// both add to.
//
// A Connection and its connection actor (Connection.shared, connection.go):
//
//   - gate: the number of Sends inside it (a counter: each Send adds one and
//     takes it back) and its closed bit, a latch set once, by Close or by the
//     actor (closeGate), and never cleared. The actor waits until no Send is
//     inside before it takes the sends for the last time.
//   - sends: the frames Send took, a lock-free stack: handles push (inside
//     the gate; the actor too, for a SendToken before the handshake), the
//     actor takes it whole.
//   - queued: the outbound queue in bytes, a counter: Send adds, the actor
//     subtracts what leaves (written, or handed back). It is never stored.
//   - crossed: a Send left queued past the high-water mark: handles set it,
//     the actor clears it.
//   - paused: reading is paused by flow control: the actor writes it,
//     handles read it (ReadPaused).
//   - room: the channel WaitDrain waits on: WaitDrain installs it when there
//     is none, the actor takes it and closes it.
//   - protocol and tls: the codec and the TLS state, written by the actor
//     once the handshake is done (the TLS state again when a token/2
//     session resumes on a new socket), read by Send and TLSState.
//   - remote and local: the socket's addresses, written before the handle
//     is shared, and again by the actor when a token/2 session resumes on a
//     new socket; read by RemoteAddr and LocalAddr.
//   - id, pid, the limits: written before the handle is shared, read-only
//     after. A server's token/2 session keeps its actor, and so its PID,
//     across its sockets (conn_session.go).
//
// A connection actor and its own read pump (not the handle) share one more:
//
//   - ownerHere: the read pump runs the owner's mailbox now; the read pump
//     sets it around that run, the actor reads it when it hands a batch to
//     be written (conn_write.go).
//
// A Server or Client and its actor (lifecycle.go, server.go, client.go):
//
//   - status: written by the actor, read by handles.
//   - asked: the request a handle left (Close, Connect), set by handles
//     from none (or from the actor's cycle-close mark, see status.go), and
//     taken back to none by the actor.
//   - shut: set once by Shutdown, read by Connect.
//   - inCallback: the callbacks running, a counter kept by the actor's
//     emitter, read by Shutdown.
//   - done: closed by the actor when it stops, waited on by Done and
//     Shutdown.
//   - Server.addr and Server.conns: written by the actor (listening, the
//     live connections), read by Addr and Connections.
//   - Client.conn and Client.cycling: written by the actor (the live
//     connection, reconnection running), read by Send, Close and Connect.
//   - Client.buffered and Client.routed: counters: Send adds what it puts in
//     the reconnect buffer and what it routes through the actor, the actor
//     takes it back as it sends, keeps or drops those tokens.
//   - stats: counters, added to by the actors, read by Stats.
package actors
