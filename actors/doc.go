// Package actors is the tokenserver runtime: the connection actor, the server
// actor and the client actor built on Proto.Actor, their event messages, and
// the public handles [Server], [Client] and [Connection] that mirror the API of
// npm token-server 1.0.10.
//
// # Shape
//
// Every socket is owned by exactly one connection actor (conn_actor.go, with
// its read side in conn_read.go and its write side in conn_write.go). Two
// small goroutines, the pumps from package tlsio, do the blocking reads and
// writes and talk to the actor through its mailbox. The connection actor
// decodes frames with package wire and hands the frames of each read to its
// owner, the server actor (server_actor.go) or the client actor
// (client_actor.go), which delivers them to the user through one event path
// (emitter.go): callbacks in the options, and plain-data messages
// (events.go) to a handler PID.
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
// itself, under a supervisor when ClientOptions.Reconnect is set.
//
// # State
//
// Each piece of state has one owner. The server and client actors make every
// status transition (status.go has the tables); the handles read the status
// and leave requests (Close, Connect), which the actors take. A connection's
// handle and actor share only what Send and the flow control need
// (connection.go: the gate, the queue size, whether reading is paused).
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
// callback that panicked is reported and the connection goes on.
//
// # Observing
//
// Server.Stats and Client.Stats return what each has counted (stats.go):
// atomic counters, one add per event, read chunk or write batch. With
// Runtime.MeterProvider the same counts are OpenTelemetry metrics
// (metrics.go), read by one callback when the provider collects.
//
// # Running
//
// Server, client and standalone owner actors run on goroutines that live (a
// worker pool per handle); connection actors run inline, on the goroutine
// that sends to them (dispatcher.go says why).
package actors
