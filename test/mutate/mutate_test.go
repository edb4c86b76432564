package main

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestMarkToken(t *testing.T) {
	for _, tc := range []struct {
		line   string
		column int
		want   string
	}{
		{"\tif after := s.queued.Add(n); after > s.max && after != n {", 37,
			"if after := s.queued.Add(n); after [[>]] s.max && after != n {"},
		{"\t\tfor ; a.in.owed > 0; a.in.owed-- {", 29, "for ; a.in.owed > 0; a.in.[[owed]]-- {"},
		{"\t\tfor ; a.in.owed > 0; a.in.owed-- {", 33, "for ; a.in.owed > 0; a.in.owed[[--]] {"},
		{"x >= y", 3, "x [[>=]] y"},
		{"i += nl + 1", 9, "i += nl [[+]] 1"},
	} {
		got, err := markToken(tc.line, tc.column)
		if err != nil || got != tc.want {
			t.Errorf("markToken(%q, %d) = %q, %v; want %q", tc.line, tc.column, got, err, tc.want)
		}
	}
	for _, col := range []int{0, 40} {
		if got, err := markToken("x >= y", col); err == nil {
			t.Errorf("markToken at column %d = %q, want an error", col, got)
		}
	}
}

func TestParseSurvivors(t *testing.T) {
	good := "# accepted\n\nwire/a.go: CONDITIONALS_BOUNDARY: if n [[<]] m { -- equivalent: n never equals m here\n"
	list, err := parseSurvivors(strings.NewReader(good), "list")
	if err != nil {
		t.Fatal(err)
	}
	a, ok := list["wire/a.go: CONDITIONALS_BOUNDARY: if n [[<]] m {"]
	if !ok || a.Reason != "equivalent: n never equals m here" || a.Line != 3 || len(list) != 1 {
		t.Fatalf("parsed %+v", list)
	}
	for name, bad := range map[string]string{
		"no reason":    "wire/a.go: CONDITIONALS_BOUNDARY: if n [[<]] m {\n",
		"empty reason": "wire/a.go: CONDITIONALS_BOUNDARY: if n [[<]] m { --  \n",
		"no type":      "wire/a.go: if n [[<]] m { -- why\n",
		"no marker":    "wire/a.go: CONDITIONALS_BOUNDARY: if n < m { -- why\n",
		"twice":        "wire/a.go: CONDITIONALS_BOUNDARY: if n [[<]] m { -- why\nwire/a.go: CONDITIONALS_BOUNDARY: if n [[<]] m { -- again\n",
	} {
		if _, err := parseSurvivors(strings.NewReader(bad), "list"); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestCount(t *testing.T) {
	m := func(code, status string) mutant {
		return mutant{File: "wire/a.go", Line: 1, Column: 1, Type: "CONDITIONALS_BOUNDARY", Status: status, Code: code}
	}
	ms := []mutant{
		m("[[<]] 1", statusKilled), m("[[<]] 2", statusKilled), m("[[<]] 3", statusKilled),
		m("[[<]] 4", statusLived), m("[[<]] 5", statusLived),
		m("[[<]] 6", statusTimedOut), m("[[<]] 7", statusNotViable), m("[[<]] 8", statusNotCovered), m("[[<]] 9", statusSkipped),
	}
	key := func(code string) string { return "wire/a.go: CONDITIONALS_BOUNDARY: " + code }
	list := []accepted{
		{Key: key("[[<]] 4"), Line: 1},                              // survives: accepted
		{Key: key("[[<]] 1"), Line: 2},                              // killed now: stale
		{Key: key("[[<]] 0"), Line: 3},                              // gone: stale
		{Key: key("[[<]] 9"), Line: 4},                              // skipped (outside a diff): not stale
		{Key: "wire/b.go: CONDITIONALS_BOUNDARY: [[<]] 1", Line: 5}, // a file the run left out: not stale
	}
	var s summary
	s.count(ms, list, false)
	if s.Killed != 3 || s.Lived != 2 || s.Accepted != 1 || s.TimedOut != 1 || s.NotViable != 1 || s.NotCovered != 1 || s.Skipped != 1 {
		t.Errorf("counted %+v", s)
	}
	if len(s.Survivors) != 1 || s.Survivors[0].Code != "[[<]] 5" {
		t.Errorf("survivors %+v, want the one at 5", s.Survivors)
	}
	if len(s.Stale) != 2 || s.Stale[0].Line != 2 || s.Stale[1].Line != 3 {
		t.Errorf("stale %+v, want lines 2 and 3", s.Stale)
	}
	if e, ea := s.Efficacy(), s.EfficacyAccepted(); e != 60 || ea != 75 {
		t.Errorf("efficacy %.1f, accepted aside %.1f; want 60 and 75", e, ea)
	}
	// An interrupted run: what it did not reach is not gone.
	var p summary
	p.count(ms, list, true)
	if len(p.Stale) != 1 || p.Stale[0].Line != 2 {
		t.Errorf("stale after an interrupted run %+v, want line 2 only", p.Stale)
	}
}

// An interrupted run's results come from gremlins' log, up to its shutdown
// (the mutants it logs after were cut short by the interrupt).
func TestResultsFromLog(t *testing.T) {
	log := `Starting...
Gathering coverage... done in 44.3s
      KILLED CONDITIONALS_NEGATION at actors/conn_actor.go:103:14
   TIMED OUT CONDITIONALS_NEGATION at actors/conn_actor.go:215:14
       LIVED ARITHMETIC_BASE at actors/conn_end.go:236:41
 NOT COVERED CONDITIONALS_BOUNDARY at actors/conn_actor.go:185:37

Shutting down gracefully...
       LIVED ARITHMETIC_BASE at supervisor/policy.go:83:18
      KILLED CONDITIONALS_BOUNDARY at supervisor/policy.go:100:15
`
	got := resultsFromLog(log)
	want := gremlinsOutput{Files: []gremlinsFile{
		{Name: "actors/conn_actor.go", Mutations: []gremlinsMutation{
			{Type: "CONDITIONALS_NEGATION", Status: statusKilled, Line: 103, Column: 14},
			{Type: "CONDITIONALS_NEGATION", Status: statusTimedOut, Line: 215, Column: 14},
			{Type: "CONDITIONALS_BOUNDARY", Status: statusNotCovered, Line: 185, Column: 37},
		}},
		{Name: "actors/conn_end.go", Mutations: []gremlinsMutation{
			{Type: "ARITHMETIC_BASE", Status: statusLived, Line: 236, Column: 41},
		}},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("resultsFromLog = %+v\nwant %+v", got, want)
	}
}

func TestGoRuns(t *testing.T) {
	pkgs := []string{"./actors/...", "./test/flowcontrol"}
	for _, tc := range []struct {
		args []string
		want [][]string
	}{
		{[]string{"mod", "download"}, [][]string{{"mod", "download"}}},
		{[]string{"test", "./wire"}, [][]string{{"test", "./wire"}}},
		{[]string{"test", "-coverpkg", "./actors/...", "-cover", "-coverprofile", "/tmp/c", "./..."},
			[][]string{{"test", "-coverpkg", "./actors/...", "-cover", "-coverprofile", "/tmp/c", "./actors/...", "./test/flowcontrol"}}},
		{[]string{"test", "-timeout", "1m0s", "-failfast", "./..."},
			[][]string{{"test", "-timeout", "1m0s", "-failfast", "./actors/..."}, {"test", "-timeout", "1m0s", "-failfast", "./test/flowcontrol"}}},
	} {
		got := goRuns(tc.args, pkgs)
		if !slices.EqualFunc(got, tc.want, slices.Equal) {
			t.Errorf("goRuns(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
}

// The survivors list checked in parses, and every line names a file that
// exists.
func TestSurvivorsList(t *testing.T) {
	list, err := readSurvivors("survivors.txt")
	if err != nil {
		t.Fatal(err)
	}
	for key, a := range list {
		file, _, _ := strings.Cut(key, ": ")
		if _, err := os.Stat(filepath.Join("..", "..", file)); err != nil {
			t.Errorf("survivors.txt:%d: %v", a.Line, err)
		}
	}
}

// A nested directory mutated whole keeps its result files in the output
// directory itself, apart from its parent's.
func TestTargetFiles(t *testing.T) {
	nested := target{name: "actors/internal/framepool"}.file(".json")
	if nested != "actors_internal_framepool.json" {
		t.Errorf("nested target's results: %q", nested)
	}
	if top := (target{name: "actors"}).file(".json"); top != "actors.json" || top == nested {
		t.Errorf("top-level target's results: %q", top)
	}
}

// A target mutates only the files of its directory (those -diff-files
// matches, for the diff target): gremlins is told to leave out every other
// Go file of the module.
func TestExcludeOthers(t *testing.T) {
	root := t.TempDir()
	for _, f := range []string{"actors/conn_session.go", "actors/client.go", "actors/internal/timer/timer.go", "actors/internal/other/other.go", "wire/codec.go", "main.go"} {
		path := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("package x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(root)
	for _, tc := range []struct {
		dir, files string
		mutated    []string
		excluded   []string
	}{
		{"actors", "", []string{"actors/conn_session.go", "actors/client.go", "actors/internal/timer/timer.go"}, []string{"wire/codec.go", "main.go"}},
		{"actors", `^actors/conn_`, []string{"actors/conn_session.go"}, []string{"actors/client.go", "actors/internal/timer/timer.go", "wire/codec.go", "main.go"}},
		// A nested directory mutated whole: its parents' own files and
		// their other subdirectories are left out.
		{"actors/internal/timer", "", []string{"actors/internal/timer/timer.go"},
			[]string{"actors/conn_session.go", "actors/client.go", "actors/internal/other/other.go", "wire/codec.go", "main.go"}},
	} {
		var files *regexp.Regexp
		if tc.files != "" {
			files = regexp.MustCompile(tc.files)
		}
		pattern, err := excludeOthers(tc.dir, files)
		if err != nil {
			t.Fatal(err)
		}
		re := regexp.MustCompile(pattern)
		for _, f := range tc.mutated {
			if re.MatchString(f) {
				t.Errorf("-diff-files %q: %s excluded", tc.files, f)
			}
		}
		for _, f := range tc.excluded {
			if !re.MatchString(f) {
				t.Errorf("-diff-files %q: %s not excluded", tc.files, f)
			}
		}
	}
}

// -workers is the number of mutants tested at once on both kinds of target:
// gremlins halves its --workers in integration mode, in which both run, so
// they ask for twice as many. A whole target's mutants run its own
// packages' tests.
func TestTargetWorkers(t *testing.T) {
	cfg := config{whole: []string{"wire"}, diffDir: "actors", base: "main", tests: []string{"./actors"}, workers: 2, coefficient: 8}
	ts, err := cfg.targets()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"wire": "4", "actors": "4"}
	wantTests := map[string][]string{"wire": {"./wire/..."}, "actors": {"./actors"}}
	for _, tg := range ts {
		if !slices.Equal(tg.tests, wantTests[tg.name]) || !slices.Contains(tg.args, "--integration") {
			t.Errorf("%s: tests %q, gremlins %q; want tests %q in integration mode", tg.name, tg.tests, tg.args, wantTests[tg.name])
		}
	}
	for _, tg := range ts {
		i := slices.Index(tg.args, "--workers")
		if i < 0 || i+1 >= len(tg.args) || tg.args[i+1] != want[tg.name] {
			t.Errorf("%s: gremlins %q, want --workers %s", tg.name, tg.args, want[tg.name])
		}
	}
	if len(ts) != 2 {
		t.Errorf("%d targets, want 2", len(ts))
	}
}
