package actors

import "strconv"

// Status is the state of a Server or Client, with the values of npm
// token-server's Status enum.
type Status int32

// The status values of the original, in its order.
const (
	// OFFLINE: not listening or connected, and not trying to.
	OFFLINE Status = 0
	// CLOSED: Close was called and the close is in progress.
	CLOSED Status = 1
	// CONNECTING: listening or dialing has been asked for and is in progress.
	CONNECTING Status = 2
	// ONLINE: listening (server) or connected (client).
	ONLINE Status = 3
)

// String returns the name of the status, as in the original.
func (s Status) String() string {
	switch s {
	case OFFLINE:
		return "OFFLINE"
	case CLOSED:
		return "CLOSED"
	case CONNECTING:
		return "CONNECTING"
	case ONLINE:
		return "ONLINE"
	}
	return "Status(" + strconv.Itoa(int(s)) + ")"
}

// The status machines. The server or client actor makes every transition;
// the handle only asks (Close, Connect) and answers at once from the status
// and the request it left, so that Status() right after Close() says CLOSED
// and right after Connect() says CONNECTING.
//
// Server:
//
//	from        on                                   to          events
//	CONNECTING  the listener listens                 ONLINE      connect
//	CONNECTING  listening fails                      OFFLINE     error, close(true)
//	OFFLINE     ListenRetry restarts the listener    CONNECTING  listen retry
//	OFFLINE     Connect(delay)                       CONNECTING  (listens after delay)
//	ONLINE      accepting fails for good             CLOSED      error, then as Close
//	ONLINE,     Close()                              CLOSED      (remoteClose to clients)
//	CONNECTING
//	CLOSED      listener gone, every connection      OFFLINE     close(hadError)
//	            closed (forced after CloseTimeout)
//
// Client:
//
//	from        on                                   to          events
//	CONNECTING  dialed, TLS handshake done           ONLINE      connect
//	CONNECTING  the dial fails                       OFFLINE     error, close(true)
//	ONLINE      the connection ends                  OFFLINE     [error], close(hadError)
//	OFFLINE     Connect(delay)                       CONNECTING  (dials after delay)
//	OFFLINE     the reconnect policy restarts        CONNECTING  reconnecting
//	OFFLINE     the reconnect policy gives up        OFFLINE     gave up, dropped
//	ONLINE,     Close()                              CLOSED      (the connection closes)
//	CONNECTING,
//	reconnect
//	waiting
//	CLOSED      the connection or dial has ended     OFFLINE     close(hadError)
//
// With reconnection (or ListenRetry), a failed attempt (or listen) has its
// own close event, and the cycle goes on. A Close asked for before that
// close is delivered ends the cycle, and one close event comes once it has
// stopped; a Close that lands while that close is being delivered (from its
// callback, say) is answered by it: the cycle stops and no other close
// comes.

// request is what a handle asked its actor and the actor has not yet taken.
type request int32

const (
	reqNone    request = iota
	reqClose           // Close returned true
	reqConnect         // Connect returned true
	// reqNone while the actor delivers the close of a failed attempt (or
	// listen) after which the reconnection (or listen retry) goes on: a
	// Close or Connect that lands meanwhile replaces it, and the actor
	// sees it when the close has been delivered (endCycleClose).
	reqCycleClose
)
