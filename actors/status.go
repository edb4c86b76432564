package actors

import (
	"strconv"
	"sync/atomic"
)

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

// statusCell is the status of one server or client. The handle reads it and
// claims transitions with compare-and-swap so that Close and Connect can answer
// at once; the owning actor makes every other change.
type statusCell struct{ v atomic.Int32 }

func (c *statusCell) load() Status   { return Status(c.v.Load()) }
func (c *statusCell) store(s Status) { c.v.Store(int32(s)) }
func (c *statusCell) cas(from, to Status) bool {
	return c.v.CompareAndSwap(int32(from), int32(to))
}
