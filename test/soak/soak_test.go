//go:build soak

// Package soak runs many reconnecting clients against a server that is
// restarted several times, and accounts for every token. It is not part of
// `make test`; run it with `make soak` (SOAK=2m make soak for longer).
package soak

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
	"go.uber.org/goleak"
)

var (
	duration = flag.Duration("soak.duration", 60*time.Second, "how long to send")
	clients  = flag.Int("soak.clients", 32, "clients")
	restarts = flag.Int("soak.restarts", 4, "server restarts during the run")
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSoak(t *testing.T) {
	goroutinesBefore := runtime.NumGoroutine()
	certs, err := tlsio.GenerateDevCerts()
	if err != nil {
		t.Fatal(err)
	}
	sys := actors.NewQuietSystem()
	up := make(chan struct{}, 16)
	down := make(chan struct{}, 16)
	srv, err := actors.NewServer(actors.ServerOptions{
		Host: "127.0.0.1", TLS: certs.ServerOptions(), Runtime: actors.Runtime{System: sys},
		OnConnect: func() { up <- struct{}{} },
		OnClose:   func(bool) { down <- struct{}{} },
		OnToken:   func(tok []byte, c *actors.Connection) { c.Send(tok) },
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, up, "the server listening")
	port := srv.Addr().(*net.TCPAddr).Port

	// Every token Send took is settled once: echoed, or reported dropped.
	// A token reported maybe sent (it was in a write that failed) may be
	// echoed too, before or after the report: that is not a duplicate.
	// Tokens refused by Send (false) are counted by the sender; OnDropped
	// also reports those the reconnect buffer had no room for
	// (ErrBufferFull), which are not settled again here.
	var sent, echoed, dropped, maybeSent, maybeEchoed, refused, duplicates atomic.Int64
	type clientState struct {
		mu          sync.Mutex
		outstanding map[string]bool
		maybe       map[string]bool // reported maybe sent
	}
	states := make([]*clientState, *clients)
	cls := make([]*actors.Client, *clients)
	for i := range cls {
		st := &clientState{outstanding: map[string]bool{}, maybe: map[string]bool{}}
		states[i] = st
		onEcho := func(tok []byte) {
			st.mu.Lock()
			defer st.mu.Unlock()
			switch {
			case st.outstanding[string(tok)]:
				delete(st.outstanding, string(tok))
				echoed.Add(1)
			case st.maybe[string(tok)]:
				delete(st.maybe, string(tok))
				maybeEchoed.Add(1)
			default:
				duplicates.Add(1)
			}
		}
		onDrop := func(tok []byte, reason error) {
			if errors.Is(reason, actors.ErrBufferFull) {
				return // Send returned false: counted as refused
			}
			st.mu.Lock()
			defer st.mu.Unlock()
			isMaybe := errors.Is(reason, actors.ErrMaybeSent)
			switch {
			case st.outstanding[string(tok)]:
				delete(st.outstanding, string(tok))
				dropped.Add(1)
				if isMaybe {
					maybeSent.Add(1)
					st.maybe[string(tok)] = true
				}
			case isMaybe: // echoed first, then reported maybe sent
				maybeSent.Add(1)
				maybeEchoed.Add(1)
			default:
				duplicates.Add(1)
			}
		}
		r := actors.DefaultReconnect()
		r.Policy.Initial, r.Policy.Max = 20*time.Millisecond, 500*time.Millisecond
		r.Policy.MaxRetries, r.Policy.Unlimited = 0, true
		cls[i], err = actors.NewClient(actors.ClientOptions{
			Host: "127.0.0.1", Port: port, TLS: certs.ClientOptions(), Runtime: actors.Runtime{System: sys},
			Reconnect: r,
			OnToken:   func(tok []byte, _ *actors.Connection) { onEcho(tok) },
			OnDropped: func(toks [][]byte, reason error) {
				for _, tok := range toks {
					onDrop(tok, reason)
				}
			},
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	var peakRSS atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range cls {
		wg.Add(1)
		go func(i int, c *actors.Client, st *clientState) {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				st.mu.Lock()
				busy := len(st.outstanding) >= 256
				st.mu.Unlock()
				if busy {
					time.Sleep(time.Millisecond) // pacing of the load generator
					continue
				}
				tok := fmt.Sprintf("c%d-t%d\n\\payload", i, n)
				st.mu.Lock()
				st.outstanding[tok] = true
				st.mu.Unlock()
				if c.Send([]byte(tok)) {
					sent.Add(1)
				} else {
					st.mu.Lock()
					delete(st.outstanding, tok) // refused: reported to the caller at once
					st.mu.Unlock()
					refused.Add(1)
				}
			}
		}(i, c, states[i])
	}

	start := time.Now()
	every := *duration / time.Duration(*restarts+1)
	for r := 0; r < *restarts; r++ {
		time.Sleep(every)
		srv.Close()
		waitFor(t, down, "the server's close")
		peakRSS.Store(max(peakRSS.Load(), rss()))
		time.Sleep(100 * time.Millisecond) // the server stays down a moment
		srv.Connect(0)
		waitFor(t, up, "the server listening again")
		t.Logf("%6.1fs restart %d: sent %d, echoed %d, dropped %d", time.Since(start).Seconds(), r+1, sent.Load(), echoed.Load(), dropped.Load())
	}
	time.Sleep(time.Until(start.Add(*duration)))
	close(stop)
	wg.Wait()
	settled := func() bool { return echoed.Load()+dropped.Load() == sent.Load() }
	for deadline := time.Now().Add(30 * time.Second); !settled() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	peakRSS.Store(max(peakRSS.Load(), rss()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range cls {
		if err := c.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	diff := sent.Load() - echoed.Load() - dropped.Load()
	fmt.Printf("soak: %v, %d clients, %d server restarts\n", *duration, *clients, *restarts)
	fmt.Printf("tokens sent      %d\n", sent.Load())
	fmt.Printf("tokens echoed    %d\n", echoed.Load())
	fmt.Printf("tokens dropped   %d (reported by OnDropped; %d of them maybe sent, %d maybe sent and echoed)\n",
		dropped.Load(), maybeSent.Load(), maybeEchoed.Load())
	fmt.Printf("refused by Send  %d (returned false, never taken)\n", refused.Load())
	fmt.Printf("difference       %d\n", diff)
	fmt.Printf("duplicates       %d\n", duplicates.Load())
	fmt.Printf("peak RSS         %.1f MiB\n", float64(peakRSS.Load())/(1<<20))
	fmt.Printf("goroutines       %d before, %d after\n", goroutinesBefore, runtime.NumGoroutine())
	if diff != 0 || duplicates.Load() != 0 {
		t.Fatalf("%d tokens unaccounted for, %d duplicates", diff, duplicates.Load())
	}
}

// waitFor waits for one value on ch, failing the soak after a minute.
func waitFor[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(time.Minute):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// rss returns the peak resident set size of the process (VmHWM), in bytes.
func rss() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
