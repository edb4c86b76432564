package hardening

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
)

// Admission when the server holds all the sockets it can before their
// handshake (MaxPending): silent sockets make room, a real handshake is
// never cut, a refusal is a TLS alert the client can name, and it is logged
// once per burst. Issue 30 found sixteen addresses of silent sockets locking
// everybody else out; issue 32 found no test of MaxHandshakes.

// Sixteen addresses, each holding its share (64) of silent sockets, fill
// MaxPending (1,024: the limits the lock-out was found with); a real client
// from a seventeenth address connects and echoes within a second, and the
// silent socket that made room for it gives no event.
func TestSixteenAddressesOfSilentSocketsDoNotLockOutASeventeenth(t *testing.T) {
	const addrs, each = 16, 64
	raiseDescriptorLimit(t, 2*addrs*each+256)
	r := newRig(t, func(o *actors.ServerOptions) {
		o.MaxPending = addrs * each
		o.MaxPendingPerAddr = each
	})
	for i := 1; i <= addrs; i++ {
		dialSilent(t, r.port, fmt.Sprintf("127.0.0.%d", i), each)
	}
	require.Eventually(t, func() bool { return r.srv.Stats().Accepted >= 1+addrs*each }, deadline, 5*time.Millisecond,
		"the server holds every silent socket")

	cfg, err := tlsio.ClientConfig(r.certs.ClientOptions())
	require.NoError(t, err)
	start := time.Now()
	require.NoError(t, echoOnce(t, fmt.Sprintf("127.0.0.1:%d", r.port), cfg, &net.TCPAddr{IP: net.ParseIP("127.0.0.17")}),
		"a client from a seventeenth address is let in")
	t.Logf("a client from 127.0.0.17 echoed in %v with %d silent sockets from %d addresses held",
		time.Since(start).Round(time.Microsecond), addrs*each, addrs)
	require.Less(t, time.Since(start), time.Second)
	require.EqualValues(t, 1, r.srv.Stats().RefusedMaxPending, "one silent socket made room")
	require.Zero(t, r.errorsMatching(actors.ErrTooManyPending), "an evicted socket gives no event")
	r.checkHealthy("with the pending queue full")
}

// Sockets waiting their turn have their handshake timeout running from
// accept: with a share of 1, four silent sockets from one address are all
// closed as timed out about one timeout after they came, not one timeout
// after their turn (which would take four).
func TestWaitingSocketsTimeOutFromAccept(t *testing.T) {
	const n, timeout = 4, time.Second
	r := newRig(t, func(o *actors.ServerOptions) {
		o.MaxPendingPerAddr = 1
		o.Limits.HandshakeTimeout = timeout
	})
	start := time.Now()
	silent := dialSilent(t, r.port, "127.0.0.1", n)
	for i, c := range silent {
		err := readUntilClosed(c, deadline)
		var ne net.Error
		require.False(t, errors.As(err, &ne) && ne.Timeout(), "silent socket %d was not closed by the server", i)
	}
	took := time.Since(start)
	t.Logf("%d silent sockets with a share of 1 and a %v timeout were all closed in %v", n, timeout, took.Round(time.Millisecond))
	require.Less(t, took, n*timeout*5/8, "the last one's timeout ran from its turn, not from accept")
	require.Eventually(t, func() bool { return r.errorsMatching(tlsio.ErrHandshakeTimeout) == n }, deadline, 5*time.Millisecond,
		"each is a handshake that did not finish in time")
	require.Equal(t, n, r.errorsMatching(actors.ErrHandshake))
	require.Zero(t, r.srv.Stats().RefusedMaxPending)
	r.checkHealthy("after the timeouts")
}

// With default options, raw sockets that never handshake from one address,
// as many as the server holds (MaxPending), do not keep a client of another
// address out: it connects and echoes within a second.
func TestSilentSocketsUpToMaxPendingLockOutNobody(t *testing.T) {
	raiseDescriptorLimit(t, 2*actors.DefaultMaxPending+256)
	r := newRig(t, nil)
	dialSilent(t, r.port, "127.0.0.1", actors.DefaultMaxPending)
	require.Eventually(t, func() bool { return r.srv.Stats().Accepted >= 1+actors.DefaultMaxPending }, deadline, 5*time.Millisecond,
		"the server holds every silent socket")

	cfg, err := tlsio.ClientConfig(r.certs.ClientOptions())
	require.NoError(t, err)
	start := time.Now()
	require.NoError(t, echoOnce(t, fmt.Sprintf("127.0.0.1:%d", r.port), cfg, &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}))
	t.Logf("a client from 127.0.0.2 echoed in %v with %d silent sockets from 127.0.0.1 held",
		time.Since(start).Round(time.Microsecond), actors.DefaultMaxPending)
	require.Less(t, time.Since(start), time.Second)
	require.EqualValues(t, 1, r.srv.Stats().RefusedMaxPending, "one silent socket made room")
	r.checkHealthy("with the pending queue full")
}

// With MaxPending held by silent sockets from one address, a newcomer from
// another takes the place of the oldest of them, and of it alone; the log
// says so once.
func TestTheOldestSilentSocketMakesRoom(t *testing.T) {
	var logs logLines
	r := newRig(t, func(o *actors.ServerOptions) {
		o.MaxPending = 8
		o.Runtime.Logger = logs.logger()
	})
	silent := dialSilent(t, r.port, "127.0.0.1", 8)
	require.Eventually(t, func() bool { return r.srv.Stats().Accepted >= 1+8 }, deadline, 5*time.Millisecond)

	cfg, err := tlsio.ClientConfig(r.certs.ClientOptions())
	require.NoError(t, err)
	require.NoError(t, echoOnce(t, fmt.Sprintf("127.0.0.1:%d", r.port), cfg, &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}))

	err = readUntilClosed(silent[0], deadline)
	var ne net.Error
	require.False(t, errors.As(err, &ne) && ne.Timeout(), "the oldest silent socket was not closed by the server")
	require.EqualValues(t, 1, r.srv.Stats().RefusedMaxPending, "one socket made room")
	for i, c := range silent[1:] {
		err := readUntilClosed(c, 50*time.Millisecond)
		require.True(t, errors.As(err, &ne) && ne.Timeout(), "silent socket %d is still held (%v)", i+1, err)
	}
	require.Zero(t, r.errorsMatching(actors.ErrTooManyPending), "an evicted socket gives no event")
	evicted, refused := logs.waitShutOut(t, 1)
	require.Equal(t, [2]int{1, 0}, [2]int{evicted, refused}, "logged:\n%s", logs.text())
	r.checkHealthy("after the eviction")
}

// With MaxPending held by real handshakes (clients stalled after the
// server's flight: nothing silent to evict), newcomers are refused: each
// client sees a TLS alert it names as the refusal (an actors.Client too),
// the refusals are counted and give no event, and the log has a line per
// burst, not per socket. Once the stalled handshakes finish, newcomers are
// served again.
func TestRefusedOnlyWhenNothingCanMakeRoom(t *testing.T) {
	const refusals = 10
	var logs logLines
	r := newRig(t, func(o *actors.ServerOptions) {
		o.MaxPending = 2
		o.Runtime.Logger = logs.logger()
	})
	stalled := []*stalledClient{r.stallAfterServerFlight(), r.stallAfterServerFlight()}
	for _, s := range stalled {
		wait(t, s.stalled, "a client stalled after the server's flight")
	}

	for i := range refusals - 1 {
		c, err := r.tryDial()
		if err == nil {
			c.Close()
		}
		require.ErrorIs(t, err, tlsio.ErrHandshakeRefused, "newcomer %d", i)
		if i == 0 {
			t.Logf("a refused client's error: %v", err)
		}
	}
	clientErr := make(chan error, 4)
	c, err := actors.NewClient(actors.ClientOptions{
		Host: "127.0.0.1", Port: r.port, TLS: r.certs.ClientOptions(),
		Runtime: actors.Runtime{System: actors.NewQuietSystem()},
		OnError: func(err error) { clientErr <- err },
	})
	require.NoError(t, err)
	t.Cleanup(func() { shutdown(t, c.Shutdown) })
	err = wait(t, clientErr, "the refused Client's error")
	require.ErrorIs(t, err, actors.ErrDial)
	require.ErrorIs(t, err, tlsio.ErrHandshakeRefused, "the Client names the cause")

	require.EqualValues(t, refusals, r.srv.Stats().RefusedMaxPending)
	require.Zero(t, r.errorsMatching(actors.ErrTooManyPending), "a refused socket gives no event")
	evicted, refused := logs.waitShutOut(t, refusals)
	require.Equal(t, [2]int{0, refusals}, [2]int{evicted, refused})
	lines := logs.shutOutLines()
	t.Logf("%d refusals, %d log lines: %s", refusals, len(lines), strings.Join(lines, " | "))
	require.Less(t, len(lines), refusals/2, "logged once per burst, not once per socket")

	for _, s := range stalled {
		s.finish(t)
	}
	require.Eventually(t, func() bool { return len(r.srv.Connections()) == 3 }, deadline, 5*time.Millisecond,
		"the stalled handshakes are done")
	served := r.tlsDial()
	served.Close()
	r.checkHealthy("after the refusals")
}

// MaxHandshakes 1: a client stalled after the server's flight (it holds
// its handshake open, here for as long as the server's timeout allows) does
// not hold the slot, so the next client's handshake goes through at once.
func TestMaxHandshakesSlotIsGivenBackOnceTheServerFlightIsWritten(t *testing.T) {
	r := newRig(t, func(o *actors.ServerOptions) {
		o.MaxHandshakes = 1
		o.Limits.HandshakeTimeout = time.Minute
	})
	stalled := r.stallAfterServerFlight()
	wait(t, stalled.stalled, "a client stalled after the server's flight")
	start := time.Now()
	c, err := r.tryDial()
	require.NoError(t, err, "the next handshake waited for the stalled one's slot")
	c.Close()
	t.Logf("the next handshake took %v with a client stalled after its flight", time.Since(start).Round(time.Microsecond))
	stalled.finish(t)
	r.checkHealthy("after the stalled handshake")
}

// stalledClient is a mutual-TLS client whose handshake stops after it has
// read the server's flight: its next write (its own flight) blocks until
// finish.
type stalledClient struct {
	stalled chan struct{} // closed when the client has the server's flight
	release chan struct{}
	done    chan struct{} // closed when the handshake has ended, with err
	err     error
	conn    *tls.Conn
	once    sync.Once
}

// stallAfterServerFlight starts a stalled client; cleanup ends it.
func (r *rig) stallAfterServerFlight() *stalledClient {
	r.t.Helper()
	raw, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", r.port), deadline)
	require.NoError(r.t, err)
	cfg, err := tlsio.ClientConfig(r.certs.ClientOptions())
	require.NoError(r.t, err)
	cfg.ServerName = "localhost"
	s := &stalledClient{stalled: make(chan struct{}), release: make(chan struct{}), done: make(chan struct{})}
	s.conn = tls.Client(&stallConn{Conn: raw, s: s}, cfg)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*deadline)
		defer cancel()
		s.err = s.conn.HandshakeContext(ctx)
		close(s.done)
	}()
	r.t.Cleanup(func() {
		s.once.Do(func() { close(s.release) })
		s.conn.Close()
		<-s.done
	})
	return s
}

// finish lets the stalled client's handshake go on, and checks it succeeds.
func (s *stalledClient) finish(t *testing.T) {
	t.Helper()
	s.once.Do(func() { close(s.release) })
	wait(t, s.done, "the stalled handshake's end")
	require.NoError(t, s.err)
}

// stallConn blocks its second write (the client's flight, after the
// server's) until its client's release.
type stallConn struct {
	net.Conn
	s      *stalledClient
	writes atomic.Int32
}

func (c *stallConn) Write(b []byte) (int, error) {
	if c.writes.Add(1) == 2 {
		close(c.s.stalled)
		<-c.s.release
	}
	return c.Conn.Write(b)
}

// logLines records a server's log, one text line per record.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) logger() *slog.Logger {
	return newLineLogger(func(format string, args ...any) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.lines = append(l.lines, fmt.Sprintf(format, args...))
	})
}

func (l *logLines) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// shutOutLines returns the lines that report sockets shut out at MaxPending.
func (l *logLines) shutOutLines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range l.lines {
		if shutOutLine.MatchString(line) {
			out = append(out, line)
		}
	}
	return out
}

var shutOutLine = regexp.MustCompile(`evicted=(\d+) refused=(\d+)`)

// waitShutOut waits until the log lines report n sockets shut out, and
// returns how many were evicted and refused.
func (l *logLines) waitShutOut(t *testing.T, n int) (evicted, refused int) {
	t.Helper()
	require.Eventually(t, func() bool {
		evicted, refused = 0, 0
		for _, line := range l.shutOutLines() {
			m := shutOutLine.FindStringSubmatch(line)
			e, _ := strconv.Atoi(m[1])
			r, _ := strconv.Atoi(m[2])
			evicted, refused = evicted+e, refused+r
		}
		return evicted+refused >= n
	}, deadline, 10*time.Millisecond, "the log reports %d sockets shut out:\n%s", n, l.text())
	return evicted, refused
}
