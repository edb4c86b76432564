package main

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// summary is one target's results.
type summary struct {
	Name string
	Meta runMeta
	Ran  bool // there are results

	Killed, Lived, Accepted, TimedOut, NotViable, NotCovered, Skipped, Runnable int

	Survivors []mutant   // lived, not accepted
	Timeouts  []mutant   // timed out
	Uncovered []mutant   // not covered by any test
	Stale     []accepted // accepted, but did not survive
}

// Efficacy is gremlins' efficacy, in percent: killed over killed and lived.
func (s summary) Efficacy() float64 { return percent(s.Killed, s.Killed+s.Lived) }

// EfficacyAccepted is the efficacy with the accepted survivors set aside.
func (s summary) EfficacyAccepted() float64 { return percent(s.Killed, s.Killed+s.Lived-s.Accepted) }

func percent(n, of int) float64 {
	if of == 0 {
		return 100
	}
	return 100 * float64(n) / float64(of)
}

// report is the whole report.
type report struct {
	cfg     config
	targets []summary
}

// buildReport reads the results of every target in cfg.out.
func buildReport(cfg config, ts []target, list survivorList) (*report, error) {
	r := &report{cfg: cfg}
	for _, t := range ts {
		s := summary{Name: t.name}
		dir := t.name
		if t.args[len(t.args)-1] == "." {
			dir = "."
		}
		ms, err := readResults(filepath.Join(cfg.out, t.file(".json")), dir)
		if errors.Is(err, fs.ErrNotExist) {
			r.targets = append(r.targets, s)
			continue
		}
		if err != nil {
			return nil, err
		}
		s.Ran = true
		if s.Meta, err = readMeta(filepath.Join(cfg.out, t.file(".meta.json"))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		s.count(ms, list.in(t.name), s.Meta.Interrupted)
		r.targets = append(r.targets, s)
	}
	return r, nil
}

// count sorts the mutants of a run, with the accepted survivors of its
// directory.
func (s *summary) count(ms []mutant, list []accepted, partial bool) {
	acceptedKeys := map[string]bool{}
	for _, a := range list {
		acceptedKeys[a.Key] = true
	}
	lived, tested, seen, files := map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, m := range ms {
		seen[m.Key()], files[m.File] = true, true
		switch m.Status {
		case statusKilled:
			s.Killed++
			tested[m.Key()] = true
		case statusLived:
			s.Lived++
			tested[m.Key()], lived[m.Key()] = true, true
			if acceptedKeys[m.Key()] {
				s.Accepted++
			} else {
				s.Survivors = append(s.Survivors, m)
			}
		case statusTimedOut:
			s.TimedOut++
			tested[m.Key()] = true
			s.Timeouts = append(s.Timeouts, m)
		case statusNotViable:
			s.NotViable++
		case statusNotCovered:
			s.NotCovered++
			s.Uncovered = append(s.Uncovered, m)
		case statusSkipped:
			s.Skipped++
		case statusRunnable:
			s.Runnable++
		}
	}
	// Stale: tested and never survived, or gone from the code (not in the
	// results of its file, when the run went through all of them: a run
	// of some files, or one interrupted, says nothing of the others).
	for _, a := range list {
		file, _, _ := strings.Cut(a.Key, ": ")
		if (!seen[a.Key] && files[file] && !partial) || (tested[a.Key] && !lived[a.Key]) {
			s.Stale = append(s.Stale, a)
		}
	}
	sort.Slice(s.Stale, func(i, j int) bool { return s.Stale[i].Line < s.Stale[j].Line })
}

// under returns the targets whose efficacy, accepted survivors aside, is
// under min percent.
func (r *report) under(min float64) []string {
	var low []string
	for _, s := range r.targets {
		if s.Ran && s.EfficacyAccepted() < min {
			low = append(low, s.Name)
		}
	}
	return low
}

// String is the report as text.
func (r *report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Mutation testing (gremlins, %s), %s\n", strings.Join(gremlinsMutators, ", "), time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "Accepted survivors: %s. Efficacy = killed / (killed + lived); timed out and not viable count in neither.\n\n", r.cfg.survivors)
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\tkilled\tlived\taccepted\ttimed out\tnot viable\tnot covered\tefficacy\taccepted aside\ttook\tload (avg/max)\t")
	total := 0.0
	for _, s := range r.targets {
		if !s.Ran {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\tnot run\t\t\t\t\n", s.Name)
			continue
		}
		took := "?"
		if s.Meta.Seconds > 0 {
			took = time.Duration(s.Meta.Seconds * float64(time.Second)).Round(time.Second).String()
			total += s.Meta.Seconds
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%.1f%%\t%.1f%%\t%s\t%s\t\n", s.Name, s.Killed, s.Lived, s.Accepted,
			s.TimedOut, s.NotViable, s.NotCovered, s.Efficacy(), s.EfficacyAccepted(), took, s.Meta.Load)
	}
	tw.Flush()
	fmt.Fprintf(&b, "\nTotal time %s", time.Duration(total*float64(time.Second)).Round(time.Second))
	if i := slices.IndexFunc(r.targets, func(s summary) bool { return s.Name == r.cfg.diffDir }); r.cfg.base != "" && i >= 0 && r.targets[i].Ran {
		fmt.Fprintf(&b, "; %s on the lines changed since %s, tested by %s", r.cfg.diffDir, r.cfg.base, strings.Join(r.cfg.tests, " "))
	}
	b.WriteString(".\n")
	for _, s := range r.targets {
		if s.Meta.Workers > 0 {
			fmt.Fprintf(&b, "%s: %d workers, a mutant's tests timed out after %d times the coverage run and at least %s\n",
				s.Name, s.Meta.Workers, s.Meta.Coefficient, cmp.Or(s.Meta.MinTimeout, "0s"))
		}
		if s.Meta.TestMap != "" {
			fmt.Fprintf(&b, "%s: each mutant tested by the tests that run its line only (%s)\n", s.Name, s.Meta.TestMap)
		}
		if s.Meta.Interrupted {
			fmt.Fprintf(&b, "%s: interrupted: these are the mutants tested before the stop (from gremlins' log)\n", s.Name)
		}
		if s.Runnable > 0 {
			fmt.Fprintf(&b, "%s: %d mutants covered, none tested (a dry run)\n", s.Name, s.Runnable)
		}
		if s.Skipped > 0 {
			fmt.Fprintf(&b, "%s: %d mutants outside the changed lines, skipped\n", s.Name, s.Skipped)
		}
	}
	for _, s := range r.targets {
		section(&b, s.Name+": survivors not in the list (kill them with a test, or add the line with a reason)",
			s.Survivors, func(m mutant) string { return m.Key() + "\n      at " + m.Where() })
		section(&b, s.Name+": timed out (a hang the tests ended by time; check it is one)",
			s.Timeouts, func(m mutant) string { return m.Key() + "\n      at " + m.Where() })
		if s.Name == r.cfg.diffDir {
			section(&b, s.Name+": changed lines no test covers",
				s.Uncovered, func(m mutant) string { return m.Key() + "\n      at " + m.Where() })
		}
		section(&b, s.Name+": accepted survivors that no longer survive (remove their lines)",
			s.Stale, func(a accepted) string { return fmt.Sprintf("line %d: %s", a.Line, a.Key) })
	}
	return b.String()
}

// section writes a titled list, if it is not empty.
func section[T any](b *strings.Builder, title string, items []T, line func(T) string) {
	if len(items) == 0 {
		return
	}
	fmt.Fprintf(b, "\n%s:\n", title)
	for _, it := range items {
		fmt.Fprintf(b, "  %s\n", line(it))
	}
}

// gremlinsMutators are the mutators gremlins enables by default (the ones
// this command runs).
var gremlinsMutators = []string{"ARITHMETIC_BASE", "CONDITIONALS_BOUNDARY", "CONDITIONALS_NEGATION", "INCREMENT_DECREMENT", "INVERT_NEGATIVES"}
