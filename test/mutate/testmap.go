package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"go/scanner"
	"go/token"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The test map: which tests of the -tests packages run each line of the
// diff directory. Built once before gremlins starts (each test alone, with
// coverage), it lets the wrapper test a mutant with the tests that run its
// line only, not with every test of every package: a mutant that lives then
// costs seconds instead of a minute. A test that never runs a line cannot
// see it changed; one whose coverage depends on timing may be left out,
// which can only make a mutant live that the full run kills (check a
// survivor against the full run: -per-test=false).

// testMap is the map, as the wrapper reads it from its file.
type testMap struct {
	Pkgs  []string                   `json:"pkgs"`  // import paths with tests, in -tests order
	Tests []testRef                  `json:"tests"` // every test run
	Lines map[string]map[int][]int32 `json:"lines"` // file (from the module root) -> line -> Tests indexes
}

// testRef is one top-level test (or example, or fuzz target's seeds).
type testRef struct {
	Pkg  int    `json:"pkg"` // index in Pkgs
	Name string `json:"name"`
}

// testPkg is a package of -tests, as go list gives it.
type testPkg struct {
	ImportPath, Dir string
}

// listTestPkgs resolves the -tests patterns to the packages that have
// tests, in order, each once.
func listTestPkgs(goCmd string, patterns []string) ([]testPkg, error) {
	args := append([]string{"list", "-f", "{{.ImportPath}}\t{{.Dir}}\t{{len .TestGoFiles}}\t{{len .XTestGoFiles}}"}, patterns...)
	out, err := exec.Command(goCmd, args...).Output()
	if err != nil {
		return nil, fmt.Errorf("go list %s: %w", strings.Join(patterns, " "), err)
	}
	var pkgs []testPkg
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 4 || seen[f[0]] || f[2] == "0" && f[3] == "0" {
			continue
		}
		seen[f[0]] = true
		pkgs = append(pkgs, testPkg{ImportPath: f[0], Dir: f[1]})
	}
	return pkgs, nil
}

// buildTestMap runs every test of pkgs alone, workers at once, with the
// coverage of coverpkg, and maps each line of module's files that a test
// ran to it. dir holds the test binaries and profiles.
func buildTestMap(ctx context.Context, goCmd, module, coverpkg string, pkgs []testPkg, dir string, workers int, log io.Writer) (*testMap, error) {
	m := &testMap{Lines: map[string]map[int][]int32{}}
	root, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	cases := newCaseIndex(root, module)
	type job struct {
		test int
		bin  string
		dir  string
	}
	var jobs []job
	for i, p := range pkgs {
		m.Pkgs = append(m.Pkgs, p.ImportPath)
		bin := filepath.Join(dir, strconv.Itoa(i)+".test")
		build := exec.CommandContext(ctx, goCmd, "test", "-c", "-cover", "-covermode=set", "-coverpkg="+coverpkg, "-o", bin, p.ImportPath)
		build.Stdout, build.Stderr = log, log
		if err := build.Run(); err != nil {
			return nil, fmt.Errorf("go test -c %s: %w", p.ImportPath, err)
		}
		list, err := exec.CommandContext(ctx, bin, "-test.list", ".*").Output()
		if err != nil {
			return nil, fmt.Errorf("%s -test.list: %w", p.ImportPath, err)
		}
		for _, name := range strings.Fields(string(list)) {
			if strings.HasPrefix(name, "Benchmark") {
				continue
			}
			jobs = append(jobs, job{test: len(m.Tests), bin: bin, dir: p.Dir})
			m.Tests = append(m.Tests, testRef{Pkg: i, Name: name})
		}
	}
	var (
		mu    sync.Mutex
		first error
		next  = make(chan job)
		wg    sync.WaitGroup
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				profile := filepath.Join(dir, fmt.Sprintf("cover-%d-%d.out", w, j.test))
				t := m.Tests[j.test]
				cmd := exec.CommandContext(ctx, j.bin, "-test.run", "^"+regexp.QuoteMeta(t.Name)+"$",
					"-test.count=1", "-test.timeout=5m", "-test.coverprofile="+profile)
				cmd.Dir = j.dir
				var out bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &out
				if err := cmd.Run(); err != nil {
					// Its coverage counts all the same: a test that fails
					// here (a flaky one) still ran those lines.
					fmt.Fprintf(log, "mutate: test map: %s %s: %v\n%s", m.Pkgs[t.Pkg], t.Name, err, lastLines(out.String(), 20))
				}
				lines, err := readProfile(profile, cases)
				mu.Lock()
				if err != nil && first == nil {
					first = fmt.Errorf("%s %s: %w", m.Pkgs[t.Pkg], t.Name, err)
				}
				m.add(int32(j.test), lines)
				mu.Unlock()
				_ = os.Remove(profile)
			}
		}()
	}
	for _, j := range jobs {
		next <- j
	}
	close(next)
	wg.Wait()
	if first != nil {
		return nil, first
	}
	return m, ctx.Err()
}

// add records that test ran lines (file -> lines).
func (m *testMap) add(test int32, lines map[string][]int) {
	for file, ls := range lines {
		byLine := m.Lines[file]
		if byLine == nil {
			byLine = map[int][]int32{}
			m.Lines[file] = byLine
		}
		for _, l := range ls {
			if ts := byLine[l]; len(ts) == 0 || ts[len(ts)-1] != test {
				byLine[l] = append(ts, test)
			}
		}
	}
}

// readProfile returns the lines of each file of module (named from the
// module root) that a coverage profile counts as run, the expressions of
// case clauses included (see withCaseBlocks).
func readProfile(path string, cases *caseIndex) (map[string][]int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if data, err = cases.withCaseBlocks(data); err != nil {
		return nil, err
	}
	return parseProfile(bytes.NewReader(data), cases.module)
}

// parseProfile reads a coverage profile ("mode: set", then
// "path/file.go:12.3,15.2 4 1" a block).
func parseProfile(r io.Reader, module string) (map[string][]int, error) {
	out := map[string][]int{}
	seen := map[string]map[int]bool{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "mode:") || line == "" {
			continue
		}
		path, b, err := parseBlock(line)
		if err != nil {
			return nil, err
		}
		file, ok := strings.CutPrefix(path, module+"/")
		if b.count == 0 || !ok {
			continue
		}
		if seen[file] == nil {
			seen[file] = map[int]bool{}
		}
		for l := b.start.line; l <= b.end.line; l++ {
			if !seen[file][l] {
				seen[file][l] = true
				out[file] = append(out[file], l)
			}
		}
	}
	return out, sc.Err()
}

// lastLines returns s's last n lines.
func lastLines(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "")
}

// write saves the map for the wrapper.
func (m *testMap) write(path string) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// readTestMap reads a map write saved.
func readTestMap(path string) (*testMap, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m testMap
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &m, nil
}

// selectRuns returns the go test runs of a mutant at file:line: for each
// package, in order, with tests that ran the line, `go test flags -run
// '^(?:those tests)$' pkg`. None if no test ran it.
func (m *testMap) selectRuns(flags []string, file string, line int) [][]string {
	byPkg := map[int][]string{}
	for _, i := range m.Lines[file][line] {
		t := m.Tests[i]
		byPkg[t.Pkg] = append(byPkg[t.Pkg], regexp.QuoteMeta(t.Name))
	}
	var runs [][]string
	for p, pkg := range m.Pkgs {
		names := byPkg[p]
		if len(names) == 0 {
			continue
		}
		run := append(append([]string{"test"}, flags...), "-run", "^(?:"+strings.Join(names, "|")+")$", pkg)
		runs = append(runs, run)
	}
	return runs
}

// mutatedLine finds the line gremlins changed: the line, in the source,
// of the first token that differs between a Go file (not a test) under dir
// in the copy of the module at copyRoot and the same file under srcRoot.
// Tokens, not lines: gremlins writes the mutant with go/printer, whose
// spacing differs from gofmt's here and there. It returns the file's path
// from the module root.
func mutatedLine(srcRoot, copyRoot, dir string) (string, int, error) {
	var file string
	var line int
	err := filepath.WalkDir(filepath.Join(copyRoot, dir), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		rel, err := filepath.Rel(copyRoot, path)
		if err != nil {
			return err
		}
		mutated, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		orig, err := os.ReadFile(filepath.Join(srcRoot, rel))
		if err != nil || bytes.Equal(orig, mutated) {
			return nil // a file the source does not have is no mutant
		}
		if l := firstTokenDiff(orig, mutated); l > 0 {
			file, line = filepath.ToSlash(rel), l
			return filepath.SkipAll
		}
		return nil
	})
	if err != nil {
		return "", 0, err
	}
	if file == "" {
		return "", 0, fmt.Errorf("no mutated line under %s", dir)
	}
	return file, line, nil
}

// firstTokenDiff returns the line, in a, of the first Go token that differs
// between a and b; 0 if their tokens are the same.
func firstTokenDiff(a, b []byte) int {
	fset := token.NewFileSet()
	var sa, sb scanner.Scanner
	fa, fb := fset.AddFile("a", -1, len(a)), fset.AddFile("b", -1, len(b))
	sa.Init(fa, a, nil, 0)
	sb.Init(fb, b, nil, 0)
	for {
		pa, ta, la := sa.Scan()
		_, tb, lb := sb.Scan()
		if ta != tb || la != lb {
			return fa.Line(pa)
		}
		if ta == token.EOF {
			return 0
		}
	}
}

// prepareTestMap builds the test map of t's tests for t's directory into
// dir, and returns the wrapper's environment that points to it and a note
// for the report.
func prepareTestMap(ctx context.Context, cfg config, t target, goCmd, dir, runLog string, log io.Writer) ([]string, string, error) {
	start := time.Now()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	out, err := exec.Command(goCmd, "list", "-m").Output()
	if err != nil {
		return nil, "", fmt.Errorf("go list -m: %w", err)
	}
	module := strings.TrimSpace(string(out))
	pkgs, err := listTestPkgs(goCmd, t.tests)
	if err != nil {
		return nil, "", err
	}
	fmt.Printf("mutate: %s: mapping which tests run each line (%d packages, each test alone)\n", t.name, len(pkgs))
	m, err := buildTestMap(ctx, goCmd, module, "./"+t.name+"/...", pkgs, dir, cfg.workers, log)
	if err != nil {
		return nil, "", fmt.Errorf("test map: %w", err)
	}
	path := filepath.Join(dir, "map.json")
	if err := m.write(path); err != nil {
		return nil, "", err
	}
	src, err := os.Getwd()
	if err != nil {
		return nil, "", err
	}
	note := fmt.Sprintf("%d tests of %d packages, mapped in %s", len(m.Tests), len(m.Pkgs), time.Since(start).Round(time.Second))
	fmt.Printf("mutate: %s: test map: %s\n", t.name, note)
	if runLog, err = filepath.Abs(runLog); err != nil {
		return nil, "", err
	}
	_ = os.Remove(runLog)
	env := []string{envTestMap + "=" + path, envSource + "=" + src, envDiffDir + "=" + t.name, envRunLog + "=" + runLog}
	return env, note, nil
}
