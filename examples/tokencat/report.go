package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// writeTable prints a bench result for people.
func writeTable(w io.Writer, r benchResult) {
	fmt.Fprintf(w, "target   %s\n", r.Target)
	fmt.Fprintf(w, "mode     %s%s\n", r.Mode, describeWindow(r))
	fmt.Fprintf(w, "load     %d connection(s), %d-byte tokens, %s\n", r.Conns, r.Size, r.Protocol)
	fmt.Fprintf(w, "run      %d tokens verified in %.3fs (stopped by %s)\n\n", r.Tokens, r.Seconds, r.StoppedBy)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "tokens/s\tMB/s\tp50\tp90\tp99\tmax\t")
	fmt.Fprintf(tw, "%.0f\t%.2f\t%s\t%s\t%s\t%s\t\n", r.TokensPerSec, r.MBPerSec,
		fmtMicros(r.Latency.P50), fmtMicros(r.Latency.P90), fmtMicros(r.Latency.P99), fmtMicros(r.Latency.Max))
	tw.Flush()
}

// fmtMicros formats a latency given in microseconds.
func fmtMicros(us float64) string {
	d := time.Duration(us * float64(time.Microsecond))
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", us)
	case d < time.Second:
		return fmt.Sprintf("%.2fms", us/1e3)
	default:
		return fmt.Sprintf("%.2fs", us/1e6)
	}
}

// writeJSON prints a bench result as one JSON object.
func writeJSON(w io.Writer, r benchResult) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
