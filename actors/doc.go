// Package actors is the tokenserver runtime: the connection actor, the server
// actor and the client actor built on Proto.Actor, their event messages, and
// the public handles [Server], [Client] and [Connection] that mirror the API of
// npm token-server 1.0.10.
//
// Every socket is owned by exactly one connection actor. Two small goroutines,
// the pumps from package tlsio, do the blocking reads and writes and talk to
// the actor through its mailbox. The connection actor decodes frames with
// package wire and hands batches of tokens to its parent, the server or client
// actor, which delivers them to the user either through callbacks in the
// options or as messages to a handler PID.
//
// Handle methods never block on the network. Events of one connection arrive
// in order and never concurrently with each other. An error event is always
// followed by a close event with hadError set.
package actors
