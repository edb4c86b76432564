package actors

import (
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/require"
)

// restart makes Proto.Actor start c's actor again, as after a panic under
// the default supervision.
func restart(t *testing.T, c *Connection) {
	t.Helper()
	proc, ok := c.root.ActorSystem().ProcessRegistry.Get(c.PID())
	require.True(t, ok)
	proc.SendSystemMessage(c.PID(), &actor.Restart{})
}

// A connection actor that Proto.Actor starts again has no socket: its props
// handed the socket to the first incarnation only, so that they do not keep
// a socket the actor let go. The first incarnation lets its socket go (the
// peer sees it closed), the next ends with errRestarted, and the handle
// reports the error and the close.
func TestRestartedConnectionActorEnds(t *testing.T) {
	p := newPipeConn(t, Limits{}, nil)
	restart(t, p.c)

	err := recv(t, p.errs, "the restarted actor's error")
	require.ErrorIs(t, err, errRestarted)
	require.ErrorIs(t, err, ErrConnection)
	require.True(t, recv(t, p.closes, "its close"), "closed with an error")
	require.False(t, p.c.Send([]byte("late")), "a Send after the end is refused")
	peerClosed(t, p)
	p.closes <- true // for the cleanup, which waits for the close
}

// The same with the read pump waiting for credit (the owner busy in a
// callback with the only chunk the read window allows): the first
// incarnation stops it too, or it would wait for good (goleak).
func TestRestartedConnectionActorStopsAWaitingReader(t *testing.T) {
	inCallback, release := make(chan struct{}, 1), make(chan struct{})
	p := newPipeConn(t, Limits{ReadWindow: 1}, func([]byte, *Connection) {
		select {
		case inCallback <- struct{}{}:
		default:
		}
		<-release
	})
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		for range 100 {
			if _, err := p.peer.Write([]byte("token\n")); err != nil {
				return // the first incarnation let the socket go
			}
		}
	}()
	recv(t, inCallback, "the first token's callback")
	restart(t, p.c)
	peerClosed(t, p)
	recv(t, wrote, "the peer's writes to end")
	close(release)

	require.ErrorIs(t, recv(t, p.errs, "the restarted actor's error"), errRestarted)
	require.True(t, recv(t, p.closes, "its close"))
	p.closes <- true
}

// peerClosed waits until the peer's end of the pipe sees it closed.
func peerClosed(t *testing.T, p *pipeConn) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 64)
		for {
			if _, err := p.peer.Read(buf); err != nil {
				done <- err
				return
			}
		}
	}()
	require.Error(t, recv(t, done, "the peer to see the socket closed"))
}
