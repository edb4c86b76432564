package metricsserver

import (
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"time"
)

// Go's profiles over HTTP, as net/http/pprof serves them, written here with
// runtime/pprof and runtime/trace because importing net/http/pprof alone
// registers its handlers on http.DefaultServeMux, where any server of the
// process with a nil handler would expose them. What is left out: the symbol
// endpoint (Go's profiles carry their symbols) and delta profiles (seconds=
// on heap, allocs...).

// Defaults of the seconds parameter, as net/http/pprof's.
const (
	defaultCPUSeconds   = 30
	defaultTraceSeconds = 1
)

// registerPprof adds the profile handlers under PprofPath to mux.
func registerPprof(mux *http.ServeMux) {
	mux.HandleFunc("GET "+PprofPath, profileOrIndex)
	mux.HandleFunc("GET "+PprofPath+"cmdline", cmdline)
	mux.HandleFunc("GET "+PprofPath+"profile", recording("profile", defaultCPUSeconds, pprof.StartCPUProfile, pprof.StopCPUProfile))
	mux.HandleFunc("GET "+PprofPath+"trace", recording("trace", defaultTraceSeconds, trace.Start, trace.Stop))
}

// profileOrIndex serves PprofPath+NAME, the runtime/pprof profile NAME
// (debug=N as pprof.Profile.WriteTo takes it; gc=1 collects garbage first),
// or at PprofPath itself the list of profiles.
func profileOrIndex(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, PprofPath)
	if name == "" {
		index(w)
		return
	}
	p := pprof.Lookup(name)
	if p == nil {
		http.Error(w, "unknown profile "+strconv.Quote(name), http.StatusNotFound)
		return
	}
	if r.FormValue("seconds") != "" {
		http.Error(w, "seconds (a delta profile) is not supported here: take two profiles and compare them with go tool pprof -diff_base", http.StatusBadRequest)
		return
	}
	debug := 0
	if s := r.FormValue("debug"); s != "" {
		var err error
		if debug, err = strconv.Atoi(s); err != nil {
			http.Error(w, "debug: want a number", http.StatusBadRequest)
			return
		}
	}
	if r.FormValue("gc") != "" && (name == "heap" || name == "allocs") {
		runtime.GC()
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if debug == 0 {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	} else {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
	_ = p.WriteTo(w, debug) // a write error is the client's going away
}

// index lists the profiles, each with its count and a link to its text form.
func index(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	var b strings.Builder
	b.WriteString("<html><head><title>" + PprofPath + "</title></head><body>\n<p>Profiles (debug=1 for text, none for go tool pprof):</p>\n<table>\n")
	for _, p := range pprof.Profiles() {
		n := html.EscapeString(p.Name())
		fmt.Fprintf(&b, "<tr><td>%d</td><td><a href=\"%s?debug=1\">%s</a></td></tr>\n", p.Count(), n, n)
	}
	b.WriteString("</table>\n<p><a href=\"goroutine?debug=2\">full goroutine stack dump</a>, " +
		"<a href=\"profile\">profile</a> (CPU, seconds=30), <a href=\"trace\">trace</a> (execution, seconds=1), " +
		"<a href=\"cmdline\">cmdline</a></p>\n</body></html>\n")
	_, _ = w.Write([]byte(b.String()))
}

// cmdline serves the program's arguments, separated by NUL bytes.
func cmdline(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write([]byte(strings.Join(os.Args, "\x00")))
}

// recording returns the handler of a recording made while it waits seconds
// (default def) seconds: start begins it, writing to the response, and stop
// ends it. Only one of each kind runs at a time in a process (start fails
// meanwhile; for the CPU profile, also while tokencat serve --cpuprofile
// runs). name is the download's file name.
func recording(name string, def float64, start func(io.Writer) error, stop func()) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		d, ok := duration(w, r, def)
		if !ok {
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
		if err := start(w); err != nil {
			w.Header().Del("Content-Type")
			w.Header().Del("Content-Disposition")
			http.Error(w, "could not start the "+name+": "+err.Error(), http.StatusInternalServerError)
			return
		}
		wait(r.Context(), d)
		stop()
	}
}

// duration reads the seconds parameter (a positive number, def when
// absent); a bad one is answered with 400 and ok false.
func duration(w http.ResponseWriter, r *http.Request, def float64) (d time.Duration, ok bool) {
	sec := def
	if s := r.FormValue("seconds"); s != "" {
		var err error
		if sec, err = strconv.ParseFloat(s, 64); err != nil || sec <= 0 || sec > 24*3600 {
			http.Error(w, "seconds: want a positive number of seconds", http.StatusBadRequest)
			return 0, false
		}
	}
	return time.Duration(sec * float64(time.Second)), true
}

// wait waits d, or until the request ends (the client went away, or the
// server shuts down).
func wait(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
