package hardening

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tokenserver/tokenserver/actors"
)

// A reconnect storm from one address (a server restart with a fleet behind
// one NAT, a service opening its connection pool) is served: 2,000 clients
// dial at once from 127.0.0.1, from another process, against a server with
// default admission options; every one connects and completes its round
// trips. The connect time is logged (for the notes; not asserted).
func TestBurstFromOneAddressIsServed(t *testing.T) {
	const clients, rounds = 2000, 3
	raiseDescriptorLimit(t, clients+256)
	r := newRig(t, nil)
	dir := t.TempDir()
	require.NoError(t, r.certs.WriteFiles(dir, false))
	start := time.Now()
	burst := startChild(t, map[string]string{
		burstEnv: fmt.Sprintf("127.0.0.1:%d %d %d", r.port, clients, rounds), "TOKENSERVER_CERTS": dir,
	})
	connected := burst.waitLineWithin(t, "burst connected ", 2*time.Minute)
	done := burst.waitLineWithin(t, "burst done ", 2*time.Minute)
	t.Logf("%d clients from one address: connected %s; %s (%v in all)", clients, connected, done,
		time.Since(start).Round(time.Millisecond))
	t.Logf("%s; %s", burst.waitLine(t, "burst created "), burst.waitLine(t, "burst latencies "))
	require.False(t, burst.saw("burst error"), "a client failed:\n%s", burst.output())
	require.True(t, strings.HasPrefix(connected, fmt.Sprintf("%d of %d ", clients, clients)),
		"every client connects: %s\n%s", connected, burst.output())
	require.True(t, strings.HasPrefix(done, fmt.Sprintf("%d round trips ", clients*rounds)),
		"every round trip succeeds: %s", done)
	st := r.srv.Stats()
	require.Zero(t, st.RefusedMaxPending, "no socket refused")
	require.Zero(t, st.HandshakeFailures, "no handshake failed")
	r.checkHealthy("after the burst")
}

// burstEnv makes this test binary a crowd of token clients: "ADDR N R" in
// the variable dials ADDR with N clients at once (one actor system), waits
// until every one is connected or failed, then makes R round trips on each,
// all clients at once. It prints "burst connected K of N in D", "burst
// error ..." for each failure (the first few), and "burst done ...".
const burstEnv = "TOKENSERVER_BURST"

func init() {
	spec := os.Getenv(burstEnv)
	if spec == "" {
		return
	}
	var addr string
	var n, rounds int
	if _, err := fmt.Sscan(spec, &addr, &n, &rounds); err != nil {
		fmt.Println("burst error", err)
		os.Exit(1)
	}
	if err := runBurst(addr, n, rounds); err != nil {
		fmt.Println("burst error", err)
		fmt.Println("burst done 0 round trips: failed")
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

func runBurst(addr string, n, rounds int) error {
	opts, err := childCerts("client")
	if err != nil {
		return err
	}
	host, portText, _ := strings.Cut(addr, ":")
	port, err := strconv.Atoi(portText)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	var errs []string
	report := func(i int, err error) {
		mu.Lock()
		defer mu.Unlock()
		if len(errs) < 5 {
			errs = append(errs, fmt.Sprintf("client %d: %v", i, err))
		}
	}
	system := actors.NewQuietSystem()
	defer system.Shutdown()
	up := make(chan int, n)
	replies := make([]chan []byte, n)
	list := make([]*actors.Client, n)
	var failed atomic.Int32
	start := time.Now()
	lat := make([]time.Duration, n)
	created := make([]time.Time, n)
	for i := range n {
		created[i] = time.Now()
		replies[i] = make(chan []byte, 1)
		var once sync.Once
		settle := func(ok bool) { once.Do(func() { up <- map[bool]int{true: 1, false: 0}[ok] }) }
		c, err := actors.NewClient(actors.ClientOptions{
			Host: host, Port: port, TLS: opts,
			Runtime:   actors.Runtime{System: system},
			OnConnect: func() { lat[i] = time.Since(created[i]); settle(true) },
			OnToken:   func(tok []byte, _ *actors.Connection) { replies[i] <- tok },
			OnError: func(err error) {
				failed.Add(1)
				report(i, err)
				settle(false)
			},
			OnClose: func(bool) { settle(false) },
		})
		if err != nil {
			return err
		}
		list[i] = c
	}
	fmt.Printf("burst created in %v\n", time.Since(start).Round(time.Millisecond))
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, c := range list {
			_ = c.Shutdown(ctx)
		}
	}()
	ok, limit := 0, time.After(time.Minute)
	for range n {
		select {
		case v := <-up:
			ok += v
		case <-limit:
			return fmt.Errorf("%d of %d clients connected or failed after a minute", ok, n)
		}
	}
	fmt.Printf("burst connected %d of %d in %v\n", ok, n, time.Since(start).Round(time.Millisecond))
	fmt.Printf("burst latencies p10 %v p50 %v p90 %v max %v\n", percentile(lat, 0.1), percentile(lat, 0.5), percentile(lat, 0.9), percentile(lat, 1))
	mu.Lock()
	for _, e := range errs {
		fmt.Println("burst error", e)
	}
	mu.Unlock()
	if ok < n {
		return fmt.Errorf("%d clients failed", n-ok)
	}
	start = time.Now()
	var wg sync.WaitGroup
	var trips atomic.Int64
	for i, c := range list {
		wg.Go(func() {
			for k := range rounds {
				tok := fmt.Appendf(nil, "client %d round %d", i, k)
				if !c.Send(tok) {
					report(i, fmt.Errorf("send %d refused", k))
					return
				}
				select {
				case got := <-replies[i]:
					if string(got) != string(tok) {
						report(i, fmt.Errorf("echo %q for %q", got, tok))
						return
					}
					trips.Add(1)
				case <-time.After(time.Minute):
					report(i, fmt.Errorf("no echo for round %d", k))
					return
				}
			}
		})
	}
	wg.Wait()
	fmt.Printf("burst done %d round trips in %v\n", trips.Load(), time.Since(start).Round(time.Millisecond))
	mu.Lock()
	defer mu.Unlock()
	for _, e := range errs {
		fmt.Println("burst error", e)
	}
	return nil
}

// raiseDescriptorLimit makes sure this process may open n descriptors
// (the child inherits the limit), raising the soft limit up to the hard one.
func raiseDescriptorLimit(t *testing.T, n uint64) {
	t.Helper()
	var rl syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl))
	if rl.Cur >= n {
		return
	}
	require.GreaterOrEqual(t, rl.Max, n, "the hard descriptor limit is too low for this test")
	rl.Cur = n
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl))
}
