package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progressInterval is how often the progress line is drawn.
const progressInterval = 200 * time.Millisecond

// progress draws one line on a terminal while a bench run goes: the elapsed
// time, the tokens/s so far (since the start), the tokens done, and a bar
// when the number of tokens is known (--count), with
// github.com/schollz/progressbar. The line is erased at the end, so that the
// result prints on a clean terminal.
type progress struct {
	w     io.Writer
	total int64 // tokens of the run; 0: not known (--duration only)
	every time.Duration
}

// showProgress says whether bench draws progress: only when both stdout and
// stderr are terminals (a redirected result, or logs, stay free of control
// characters) and the result is not JSON.
func showProgress(e *env, asJSON bool) bool {
	return e.stdoutIsTerminal && e.stderrIsTerminal && !asJSON
}

// run draws the progress of a run that started at start, with done giving the
// tokens done so far, until ctx ends; then it erases the line.
func (p *progress) run(ctx context.Context, start time.Time, done func() int64) {
	max := p.total
	if max <= 0 {
		max = -1 // a spinner and a count
	}
	bar := progressbar.NewOptions64(max,
		progressbar.OptionSetWriter(p.w),
		progressbar.OptionSetWidth(30),
		progressbar.OptionShowCount(),
		progressbar.OptionSetItsString("tokens"),
		progressbar.OptionSetElapsedTime(false), // in the description, with the rate
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionSetSpinnerChangeInterval(0), // drawn from here: no goroutine of its own
		progressbar.OptionUseANSICodes(true),
		progressbar.OptionClearOnFinish(),
	)
	every := p.every
	if every <= 0 {
		every = progressInterval
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			_ = bar.Clear()
			return
		case now := <-tick.C:
			n := done()
			bar.Describe(progressLine(now.Sub(start), n))
			_ = bar.Set64(n)
		}
	}
}

// progressLine is the description of the bar: elapsed time and tokens/s
// since the start.
func progressLine(elapsed time.Duration, tokens int64) string {
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(tokens) / s
	}
	return fmt.Sprintf("%6.1fs %10.0f tokens/s", elapsed.Seconds(), rate)
}
