package hardening

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tokenserver/tokenserver/actors"
)

// The server's memory budget bounds what clients can pin with tokens they
// never finish. With a budget of 8 MiB, two clients each writing 3 MiB of a
// token and no newline hold it; a third that does the same waits for it
// (its connection stops reading) and is cut after MemoryWait with
// ErrMemoryBudget; small tokens keep flowing meanwhile; and the two first
// tokens, once finished, are echoed and give the budget back. Without the
// budget the third client holds its 3 MiB as long as it likes.
func TestMemoryBudgetBoundsUnfinishedTokens(t *testing.T) {
	const mib = 1 << 20
	r := newRig(t, func(o *actors.ServerOptions) {
		o.MemoryBudget = 8 * mib
		o.MemoryWait = 2 * time.Second
		o.Limits.MaxTokenSize = 4 * mib
	})
	inUse := func() int64 { return r.srv.Stats().MemoryBudgetInUse }
	start := func(fill byte) (*tls.Conn, chan error) {
		c := r.tlsDial()
		t.Cleanup(func() { _ = c.Close() })
		done := make(chan error, 1)
		go func() { // the write stalls when the server stops reading
			_, err := c.Write(bytes.Repeat([]byte{fill}, 3*mib))
			done <- err
		}()
		return c, done
	}
	a, aw := start('a')
	require.NoError(t, wait(t, aw, "a's 3 MiB written"))
	require.Eventually(t, func() bool { return inUse() >= 3*mib }, deadline, 5*time.Millisecond, "a holds the budget")
	b, bw := start('b')
	require.NoError(t, wait(t, bw, "b's 3 MiB written"))
	// Each holds 4 MiB once its decoder has grown for its 3 MiB: asks are
	// served in order, so c comes after b's last.
	require.Eventually(t, func() bool { return inUse() == 8*mib }, deadline, 5*time.Millisecond, "a and b hold the budget")

	// The third waits for the budget, then is cut; nothing else is.
	began := time.Now()
	_, _ = start('c')
	require.Eventually(t, func() bool { return r.srv.Stats().MemoryBudgetWaits >= 1 }, deadline, 5*time.Millisecond, "c waits")
	r.checkHealthy("while c waits for the budget")
	err := wait(t, r.errCh, "c's error event")
	require.ErrorIs(t, err, actors.ErrMemoryBudget)
	require.Equal(t, actors.CodeMemoryBudget, actors.ErrorCode(err))
	require.GreaterOrEqual(t, time.Since(began), 2*time.Second, "cut after MemoryWait, not before")
	require.True(t, wait(t, r.closes, "c's close"))
	require.Equal(t, 1, r.errorsMatching(actors.ErrMemoryBudget))
	require.LessOrEqual(t, inUse(), int64(8*mib), "never more than the budget")

	// The first two finish their tokens: echoed in full, the budget freed.
	for i, c := range []*tls.Conn{a, b} {
		_, err := c.Write([]byte("\n"))
		require.NoError(t, err, "client %d; server errors %v", i, r.errsExcept(nil))
		_ = c.SetReadDeadline(time.Now().Add(deadline))
		line, err := bufio.NewReaderSize(c, 4*mib+1).ReadSlice('\n')
		require.NoError(t, err)
		require.Len(t, line, 3*mib+1)
	}
	require.Eventually(t, func() bool { return inUse() == 0 }, deadline, 5*time.Millisecond, "the budget given back")
	r.checkHealthy("at the end")
	require.Empty(t, r.errsExcept(actors.ErrMemoryBudget))
}

// errsExcept returns the connection errors seen that do not match target.
func (r *rig) errsExcept(target error) []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []error
	for _, e := range r.errs {
		if !errors.Is(e, target) {
			out = append(out, e)
		}
	}
	return out
}

// A connection gives the budget back in whole steps while a token still
// holds part of it, and the rest when that token ends: once both tokens
// are echoed, nothing is held. (A connection's record dropped at the first
// give-back lost the rest from the budget for good.)
func TestMemoryBudgetGivenBackInParts(t *testing.T) {
	const mib = 1 << 20
	r := newRig(t, func(o *actors.ServerOptions) {
		o.MemoryBudget = 8 * mib
		o.Limits.MaxTokenSize = 4 * mib
	})
	inUse := func() int64 { return r.srv.Stats().MemoryBudgetInUse }
	c := r.tlsDial()
	t.Cleanup(func() { _ = c.Close() })
	write := func(b []byte) chan error { // a write may wait for the echo to be read
		done := make(chan error, 1)
		go func() {
			_, err := c.Write(b)
			done <- err
		}()
		return done
	}
	rd := bufio.NewReaderSize(c, 4*mib+1)
	echo := func(n int) {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(deadline))
		line, err := rd.ReadSlice('\n')
		require.NoError(t, err)
		require.Len(t, line, n+1)
	}
	require.NoError(t, wait(t, write(bytes.Repeat([]byte{'a'}, 3*mib)), "3 MiB written"))
	require.Eventually(t, func() bool { return inUse() >= 3*mib }, deadline, 5*time.Millisecond, "the first token holds the budget")
	next := write(append([]byte("\n"), bytes.Repeat([]byte{'b'}, 3*mib/2)...))
	echo(3 * mib)
	require.NoError(t, wait(t, next, "the second token begun"))
	require.Eventually(t, func() bool { return inUse() > 0 && inUse() < 3*mib }, deadline, 5*time.Millisecond,
		"part given back while the second token holds the rest (in use: %d)", inUse())
	require.NoError(t, wait(t, write([]byte("\n")), "the second token ended"))
	echo(3 * mib / 2)
	require.Eventually(t, func() bool { return inUse() == 0 }, deadline, 5*time.Millisecond, "the budget given back")
	r.checkHealthy("at the end")
}

// A connection that waits for the budget is granted it as soon as exactly
// what it asked is free: with a budget of one step, a second client's
// unfinished token waits while the first's holds the step, and reads on
// once the first token ends and gives it back (not only after more than it
// asked is free, which here is never).
func TestMemoryBudgetGrantsExactlyWhatIsFree(t *testing.T) {
	const step = 1 << 20 // the unit connections ask in
	r := newRig(t, func(o *actors.ServerOptions) {
		o.MemoryBudget = step
		o.Limits.MaxTokenSize = step
	})
	stats := func() actors.Stats { return r.srv.Stats() }
	type client struct {
		c    *tls.Conn
		rd   *bufio.Reader
		done chan error
	}
	start := func(fill byte) client {
		c := r.tlsDial()
		t.Cleanup(func() { _ = c.Close() })
		done := make(chan error, 1)
		go func() { // the write may stall while the server waits for the budget
			_, err := c.Write(bytes.Repeat([]byte{fill}, step/2))
			done <- err
		}()
		return client{c, bufio.NewReaderSize(c, step), done}
	}
	finish := func(cl client, what string) {
		t.Helper()
		require.NoError(t, wait(t, cl.done, what+"'s token written"))
		_, err := cl.c.Write([]byte("\n"))
		require.NoError(t, err)
		_ = cl.c.SetReadDeadline(time.Now().Add(deadline))
		line, err := cl.rd.ReadSlice('\n')
		require.NoError(t, err, "%s's echo (server errors %v)", what, r.errsExcept(nil))
		require.Len(t, line, step/2+1)
	}
	a := start('a')
	require.Eventually(t, func() bool { return stats().MemoryBudgetInUse == step }, deadline, 5*time.Millisecond, "a holds the budget")
	b := start('b')
	require.Eventually(t, func() bool { return stats().MemoryBudgetWaits == 1 }, deadline, 5*time.Millisecond, "b waits")
	finish(a, "a") // a gives back its step: exactly what b asked
	require.Eventually(t, func() bool { return stats().MemoryBudgetInUse == step }, deadline, 5*time.Millisecond, "b granted the step a gave back")
	finish(b, "b")
	require.Eventually(t, func() bool { return stats().MemoryBudgetInUse == 0 }, deadline, 5*time.Millisecond, "the budget given back")
	require.Empty(t, r.errsExcept(nil))
	r.checkHealthy("at the end")
}
