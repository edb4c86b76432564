package actors

import (
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// NewQuietSystem returns an actor system whose Proto.Actor logger drops
// everything (its default writes to stderr). Pass it in Runtime.System to share
// one system between servers and clients.
func NewQuietSystem() *actor.ActorSystem {
	return actor.NewActorSystem(
		actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return discardLogger }),
		// The dead-letter log throttle keeps a goroutine for one interval;
		// nothing is logged, so keep that short.
		actor.WithDeadLetterThrottleInterval(10*time.Millisecond),
	)
}

var discardLogger = slog.New(slog.DiscardHandler)

// resolve fills in the defaults of a Runtime. owned reports whether the
// system is private to the caller.
func (r Runtime) resolve() (system *actor.ActorSystem, logger *slog.Logger, owned bool) {
	logger = r.Logger
	if logger == nil {
		logger = discardLogger
	}
	if r.System != nil {
		return r.System, logger, false
	}
	return NewQuietSystem(), logger, true
}
