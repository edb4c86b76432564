package main

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// runMeta is what a gremlins run cost, kept beside its results.
type runMeta struct {
	Seconds     float64
	Load        string // the load average over the run, on runtime.NumCPU() CPUs
	Workers     int
	Coefficient int
	MinTimeout  string
	Base        string
	Interrupted bool // stopped before the end: the results are the mutants tested until then, read from the log
	// TestMap: a mutant was tested by the tests that ran its line (the
	// test map's, with how many tests and how long it took to build).
	TestMap string `json:",omitempty"`
}

func (m runMeta) write(file string) error {
	data, err := json.MarshalIndent(m, "", "\t")
	if err != nil {
		return err
	}
	return os.WriteFile(file, data, 0o644)
}

func readMeta(file string) (runMeta, error) {
	var m runMeta
	data, err := os.ReadFile(file)
	if err != nil {
		return m, err
	}
	return m, json.Unmarshal(data, &m)
}

// loadSampler samples the one-minute load average (Linux's /proc/loadavg)
// while a run goes on.
type loadSampler struct {
	mu       sync.Mutex
	sum, max float64
	n        int
	stopped  chan struct{}
	done     chan struct{}
}

func startLoadSampler(every time.Duration) *loadSampler {
	l := &loadSampler{stopped: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			l.sample()
			select {
			case <-tick.C:
			case <-l.stopped:
				return
			}
		}
	}()
	return l
}

func (l *loadSampler) sample() {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sum += v
	l.max = max(l.max, v)
	l.n++
}

// stop ends the sampling and returns the figures as text.
func (l *loadSampler) stop() string {
	close(l.stopped)
	<-l.done
	l.sample()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f/%.1f on %d CPUs", l.sum/float64(l.n), l.max, runtime.NumCPU())
}
