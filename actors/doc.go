// Package actors is the tokenserver runtime: the connection actor, the server
// actor and the client actor built on Proto.Actor, their event messages, and
// the public handles [Server], [Client] and [Connection] that mirror the API of
// npm token-server 1.0.10.
//
// # Shape
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
// A token takes two hops to the user: connection actor, then its owner. The
// server's listener is a listener actor (listener.go), under a supervisor
// when ServerOptions.ListenRetry is set; a client's connection actor dials
// itself, under a supervisor when ClientOptions.Reconnect is set. The
// runtime's own messages are in messages.go, by direction. Machinery that
// knows nothing of the handles lives in packages under actors/internal:
// dispatch (how the actors run), framepool and outbox (the write side's
// buffers and queue), timer (the one timer of every actor here), serverlist
// and reconnectbuf (a client's server list and reconnect buffer).
//
// # State
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
//     once the handshake is done, read by Send and TLSState.
//   - id, pid, the addresses, the limits: written before the handle is
//     shared, read-only after.
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
// # Guarantees
//
// Handle methods never block on the network. Events of one connection arrive
// in order and never concurrently with each other. An error event is always
// followed by a close event with hadError set, except ErrHandlerPanic: a
// callback that panicked is reported and the connection goes on. The tokens
// read before a failure are delivered before its error event.
//
// # Observing
//
// Server.Stats and Client.Stats return what each has counted (stats.go, the
// counters in counters.go, the causes of failed handshakes and dials in
// causes.go): atomic counters, one add per event, read chunk or write batch.
// With Runtime.MeterProvider the same counts are OpenTelemetry metrics
// (metrics.go), read by one callback when the provider collects.
//
// # Running
//
// Server, client and standalone owner actors run on goroutines that live (a
// worker pool per handle); connection actors run inline, on the goroutine
// that sends to them (package dispatch says why). A connection actor
// therefore never blocks: what may block on the network (the shut of our
// side of a socket) runs on a goroutine of its own.
package actors
