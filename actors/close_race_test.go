package actors

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/tokenserver/tokenserver/supervisor"
)

// Close racing a listen or a connect (issue 12): Close() a moment (0 to 250
// µs, varied) after NewServer or NewClient returns true and always ends in
// exactly one close event, after any connect event; Status() is OFFLINE
// then; a server's port no longer accepts connections. Each test loops
// raceTries times, bounded in time.

const (
	raceTries  = 200
	raceBudget = 8 * time.Second // no new try after this
	raceMaxGap = 250 * time.Microsecond
)

// spin waits d without sleeping (a sleep is far coarser than µs).
func spin(d time.Duration) {
	for start := time.Now(); time.Since(start) < d; {
	}
}

// raceLog records the events of one try: their kinds in order, and the
// status inside the close callback.
type raceLog struct {
	mu     sync.Mutex
	kinds  []string
	closed chan Status // Status() inside each close callback
}

func newRaceLog() *raceLog { return &raceLog{closed: make(chan Status, 8)} }

func (l *raceLog) add(kind string) {
	l.mu.Lock()
	l.kinds = append(l.kinds, kind)
	l.mu.Unlock()
}

func (l *raceLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.kinds, ",")
}

// check verifies the events of a try whose handle has been shut down (so
// every event has been delivered): exactly one close, and no connect after
// it.
func (l *raceLog) check(t *testing.T, try int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	closes := 0
	for i, k := range l.kinds {
		switch k {
		case "close":
			closes++
		case "connect":
			if closes > 0 {
				t.Errorf("try %d: connect after the close: %v", try, l.kinds[:i+1])
			}
		}
	}
	if closes != 1 {
		t.Errorf("try %d: %d close events, want 1: %v", try, closes, l.kinds)
	}
}

// raceGap is the wait before Close in try i: 0 to raceMaxGap.
func raceGap(i int) time.Duration { return raceMaxGap * time.Duration(i%51) / 50 }

// NewServer on a free port, then Close() after 0-250 µs.
func TestServerCloseRacesListen(t *testing.T) {
	sys := NewQuietSystem()
	defer sys.Shutdown()
	began := time.Now()
	tries, listened := 0, 0
	for ; tries < raceTries && time.Since(began) < raceBudget && !t.Failed(); tries++ {
		port := freePort(t)
		l := newRaceLog()
		var s *Server
		ready := make(chan struct{})
		s, err := NewServer(ServerOptions{
			Host: "127.0.0.1", Port: port, TLS: testCerts(t).ServerOptions(),
			Runtime:   Runtime{System: sys},
			OnConnect: func() { l.add("connect") },
			OnError:   func(err error) { l.add("error: " + err.Error()) },
			OnClose: func(bool) {
				l.add("close")
				if _, ok := awaitIn(t, ready, "the handle"); ok {
					put(t, l.closed, s.Status())
				}
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		close(ready)
		spin(raceGap(tries))
		if !s.Close() {
			t.Errorf("try %d: Close() returned false (status %v)", tries, s.Status())
		}
		if st := s.Status(); st != CLOSED && st != OFFLINE {
			t.Errorf("try %d: Status() right after Close() = %v", tries, st)
		}
		// Until the close event the status says CLOSED.
		for stop, reported := time.Now().Add(deadline), false; ; {
			var st Status
			select {
			case st = <-l.closed:
				if st != OFFLINE {
					t.Errorf("try %d: Status() inside OnClose = %v, want OFFLINE", tries, st)
				}
			case <-time.After(time.Millisecond):
				if st = s.Status(); st != CLOSED && st != OFFLINE && !reported {
					reported = true
					t.Errorf("try %d: Status() = %v after Close() returned true; events %v", tries, st, l)
				}
				if time.Now().Before(stop) {
					continue
				}
				t.Errorf("try %d (Close after %v): no close event within %v; status %v; events %v; port %d refuses: %v",
					tries, raceGap(tries), deadline, st, l, port, refuses(port))
			}
			break
		}
		if st := s.Status(); st != OFFLINE {
			t.Errorf("try %d: Status() after the close event = %v", tries, st)
		}
		if !refuses(port) {
			t.Errorf("try %d: port %d still accepts connections after the close event", tries, port)
		}
		shutdownWithin(t, "server", s.Shutdown)
		l.check(t, tries)
		if strings.HasPrefix(l.String(), "connect") {
			listened++
		}
	}
	t.Logf("%d tries in %v; %d listened before the close", tries, time.Since(began).Round(time.Millisecond), listened)
}

// NewClient, then Close() after 0-250 µs: against a live server, with and
// without reconnection; and with reconnection against a port where nothing
// listens (Close then meets a dial, a failed dial, or the backoff wait).
// Connecting takes longer than 250 µs, so every other try waits 0 to 1.5
// times the time a connect takes instead, for Close to meet the connection
// as it comes up too.
func TestClientCloseRacesConnect(t *testing.T) {
	listening := make(chan struct{}, 1)
	srv, err := NewServer(ServerOptions{
		Host: "127.0.0.1", TLS: testCerts(t).ServerOptions(),
		OnConnect: func() { put(t, listening, struct{}{}) },
		// A client closed in its token/2 greeting leaves a session that
		// waits for it to come back: not long here.
		SessionTimeout: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer shutdownWithin(t, "server", srv.Shutdown)
	recv(t, listening, "listening")
	live := serverPort(srv)
	dead := freePort(t)
	sys := NewQuietSystem()
	defer sys.Shutdown()
	up := connectTime(t, live, sys)

	for _, tc := range []struct {
		name      string
		port      int
		reconnect bool
	}{
		{"plain", live, false},
		{"reconnect", live, true},
		{"reconnect to nothing", dead, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			began := time.Now()
			tries, seen := 0, map[string]int{}
			for ; tries < raceTries && time.Since(began) < raceBudget/3 && !t.Failed(); tries++ {
				gap := raceGap(tries)
				if tries%2 == 1 {
					gap = up * 3 / 2 * time.Duration(tries%51) / 50
				}
				seen[raceClient(t, tries, gap, tc.port, tc.reconnect, sys)]++
			}
			t.Logf("%d tries in %v; events seen: %v", tries, time.Since(began).Round(time.Millisecond), seen)
		})
	}
	within(t, deadline, "the server to see every client go", func() bool { return len(srv.Connections()) == 0 })
}

// connectTime is how long a client takes from NewClient to its connect
// event, on this machine now (the slowest of three).
func connectTime(t *testing.T, port int, sys *actor.ActorSystem) time.Duration {
	t.Helper()
	var slowest time.Duration
	for i := 0; i < 3; i++ {
		up := make(chan struct{}, 1)
		began := time.Now()
		c, err := NewClient(ClientOptions{
			Host: "127.0.0.1", Port: port, TLS: testCerts(t).ClientOptions(),
			Runtime:   Runtime{System: sys},
			OnConnect: func() { put(t, up, struct{}{}) },
		})
		if err != nil {
			t.Fatal(err)
		}
		recv(t, up, "connect")
		slowest = max(slowest, time.Since(began))
		shutdownWithin(t, "client", c.Shutdown)
	}
	t.Logf("a connect takes up to %v", slowest)
	return slowest
}

// raceClient is one try of TestClientCloseRacesConnect; it returns the
// events seen.
func raceClient(t *testing.T, try int, gap time.Duration, port int, reconnect bool, sys *actor.ActorSystem) (events string) {
	t.Helper()
	l := newRaceLog()
	var c *Client
	ready := make(chan struct{})
	o := ClientOptions{
		Host: "127.0.0.1", Port: port, TLS: testCerts(t).ClientOptions(),
		Runtime:   Runtime{System: sys},
		OnConnect: func() { l.add("connect") },
		OnError:   func(error) { l.add("error") },
		OnClose: func(bool) {
			l.add("close")
			if _, ok := awaitIn(t, ready, "the handle"); ok {
				put(t, l.closed, c.Status())
			}
		},
		OnReconnecting: func(n int, _ time.Duration, _ string) { l.add(fmt.Sprint("retry ", n)) },
	}
	if reconnect {
		// A long backoff: no second attempt comes within the test.
		o.Reconnect = &ReconnectOptions{Policy: fastRetry(time.Hour, time.Hour)}
	}
	c, err := NewClient(o)
	if err != nil {
		t.Fatal(err)
	}
	close(ready)
	spin(gap)
	if !c.Close() {
		t.Errorf("try %d: Close() returned false (status %v; events %v)", try, c.Status(), l)
	}
	if st := c.Status(); st != CLOSED && st != OFFLINE {
		t.Errorf("try %d: Status() right after Close() = %v", try, st)
	}
	// OFFLINE comes with the close event that answers Close; until then
	// the status says CLOSED (never ONLINE or CONNECTING again).
	for stop := time.Now().Add(deadline); ; time.Sleep(time.Millisecond) {
		st := c.Status()
		if st == OFFLINE {
			break
		}
		if st != CLOSED {
			t.Errorf("try %d (Close after %v): Status() = %v after Close() returned true; events %v", try, gap, st, l)
			break
		}
		if time.Now().After(stop) {
			t.Errorf("try %d (Close after %v): not OFFLINE %v after Close(): status %v; events %v",
				try, gap, deadline, st, l)
			break
		}
	}
	shutdownWithin(t, "client", c.Shutdown) // every event has been delivered
	// The last close answers Close: OFFLINE inside it, or CLOSED when
	// Close landed while that close (a failed dial's, with reconnection)
	// was being delivered: it answers Close then, and no other comes.
	last := Status(-1)
	for len(l.closed) > 0 {
		last = <-l.closed
	}
	if last != OFFLINE && (last != CLOSED || !reconnect) {
		t.Errorf("try %d: Status() inside the last OnClose = %v, want OFFLINE", try, last)
	}
	// One close for Close; before it, with reconnection to nothing, maybe
	// the failed dial's own (error, close): the failure and Close merge
	// into one close when Close is already asked for.
	got := l.String()
	switch got {
	case "close", "connect,close", "error,close", "error,close,close", "error,close,retry 1,close":
	default:
		t.Errorf("try %d (Close after %v): events %s", try, gap, got)
	}
	return got
}

// A failed dial can end before the supervisor's Started for that connection
// reaches the client actor (the dial to a closed port fails in
// microseconds, while the supervisor may not have run on since it spawned
// the connection actor). The late Started then names a connection that is
// gone; Stopped for it follows. Close during the backoff wait that comes
// next must still end in a close event (it hung: Close asked the dead
// connection to close). The late Started and Stopped are replayed here as
// the supervisor sends them, so that the test does not depend on luck; the
// race itself is in TestClientCloseRacesConnect ("reconnect to nothing").
func TestClientCloseAfterLateStarted(t *testing.T) {
	r := newRecorder(t)
	c := r.startClient(freePort(t), func(o *ClientOptions) {
		o.Reconnect = &ReconnectOptions{Policy: fastRetry(time.Hour, time.Hour)}
	})
	r.nextError(ErrDial, CONNECTING)
	r.nextClose(true)
	r.next("retry", CONNECTING)

	gone, err := c.system.Root.SpawnNamed(actor.PropsFromFunc(func(actor.Context) {}), "gone-connection")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.system.Root.StopFuture(gone).Wait(); err != nil {
		t.Fatal(err)
	}
	c.system.Root.Send(c.pid, &supervisor.Started{Child: gone, Attempt: 0})
	c.system.Root.Send(c.pid, &supervisor.Stopped{Child: gone, Cause: "dial failed", Failed: true})

	if !c.Close() {
		t.Fatal("Close() during the reconnect wait returned false")
	}
	r.nextClose(false)
	wantStatus(t, c.Status(), OFFLINE, "after the close")
}

// Status() seen from another goroutine: once Close() has returned true it
// says CLOSED (or OFFLINE once closed), never the status from before; once
// Connect() has returned true it says CONNECTING (or ONLINE), never OFFLINE.
// The actor takes the handle's request and moves the status: if it took the
// request first, the old status showed in between. A watcher goroutine reads
// Status() without pause while the test goroutine closes and connects again
// and again; a generation counter tells it which request is in force.
func TestStatusAfterRequestSeenFromAnotherGoroutine(t *testing.T) {
	budget := raceBudget / 4

	// watch runs cycle until it returns false, cycles times or for budget,
	// with a watcher reading status; cycle bumps gen after each request
	// returns and after each event that ends it.
	watch := func(t *testing.T, cycles int, status func() Status, cycle func(gen *atomic.Int64) bool) {
		var gen atomic.Int64 // gen%4: 1 after Close() returned true, 3 after Connect()
		var afterClose, afterConnect atomic.Int64
		stop, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
				}
				g := gen.Load()
				st := status()
				if gen.Load() != g {
					continue // the phase changed meanwhile
				}
				switch {
				case g%4 == 1 && st != CLOSED && st != OFFLINE:
					afterClose.Add(1)
				case g%4 == 3 && st != CONNECTING && st != ONLINE:
					afterConnect.Add(1)
				}
			}
		}()
		began, n := time.Now(), 0
		for ; n < cycles && time.Since(began) < budget && cycle(&gen); n++ {
		}
		close(stop)
		<-done
		if a, b := afterClose.Load(), afterConnect.Load(); a > 0 || b > 0 {
			t.Errorf("in %d cycles, Status() read %d times ONLINE or CONNECTING after Close() returned true, %d times OFFLINE or CLOSED after Connect() returned true",
				n, a, b)
		}
		t.Logf("%d cycles in %v", n, time.Since(began).Round(time.Millisecond))
	}

	t.Run("server", func(t *testing.T) {
		r := newRecorder(t)
		s := r.startServer(nil)
		r.next("connect", ONLINE)
		watch(t, 300, s.Status, func(gen *atomic.Int64) bool {
			if !s.Close() {
				t.Error("Close() returned false")
				return false
			}
			gen.Add(1)
			r.nextClose(false)
			gen.Add(1)
			if !s.Connect(0) {
				t.Error("Connect(0) returned false")
				return false
			}
			gen.Add(1)
			r.next("connect", -1)
			gen.Add(1)
			return true
		})
	})
	t.Run("client", func(t *testing.T) {
		peer := startTLSPeer(t, holdOpen)
		r := newRecorder(t)
		c := r.startClient(peer.port(), nil)
		r.next("connect", ONLINE)
		watch(t, 100, c.Status, func(gen *atomic.Int64) bool { // a TLS handshake per cycle
			if !c.Close() {
				t.Error("Close() returned false")
				return false
			}
			gen.Add(1)
			r.nextClose(false)
			gen.Add(1)
			if !c.Connect(0) {
				t.Error("Connect(0) returned false")
				return false
			}
			gen.Add(1)
			r.next("connect", -1)
			gen.Add(1)
			return true
		})
	})
}
