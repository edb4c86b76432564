package actors

import (
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/require"
)

// A connection actor that Proto.Actor starts again (after a panic, under
// the default supervision) has no socket: its props handed the socket to
// the first incarnation only, so that they do not keep a socket the actor
// let go. It ends with errRestarted, and its handle reports the error and
// the close.
func TestRestartedConnectionActorEnds(t *testing.T) {
	p := newPipeConn(t, Limits{}, nil)
	sys := p.c.root.ActorSystem()
	proc, ok := sys.ProcessRegistry.Get(p.c.PID())
	require.True(t, ok)
	proc.SendSystemMessage(p.c.PID(), &actor.Restart{})

	err := recv(t, p.errs, "the restarted actor's error")
	require.ErrorIs(t, err, errRestarted)
	require.ErrorIs(t, err, ErrConnection)
	require.True(t, recv(t, p.closes, "its close"), "closed with an error")
	require.False(t, p.c.Send([]byte("late")), "a Send after the end is refused")
	p.closes <- true   // for the cleanup, which waits for the close
	_ = p.peer.Close() // ends the first incarnation's read pump
}
