package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config is what the flags set.
type config struct {
	goCmd       string         // the real go command
	whole       []string       // directories mutated whole
	diffDir     string         // the directory mutated on its changed lines
	base        string         // the commit those lines changed since
	diffFiles   *regexp.Regexp // the files of diffDir mutated, if set
	tests       []string       // the packages tested on every mutant of diffDir
	only        []string       // the targets to run, if set
	workers     int
	coefficient int
	minTimeout  time.Duration
	out         string
	survivors   string
	minEfficacy float64
	reportOnly  bool
	dryRun      bool
	perTest     bool // test a mutant of diffDir with the tests that run its line only
}

// target is one gremlins run.
type target struct {
	name string   // the directory mutated
	args []string // gremlins unleash's arguments, without -o
	env  []string // added to the environment
	// tests are the packages whose tests a mutant runs, in order; with
	// -per-test, only those of its line, from a map built first.
	tests []string
}

// file is the name of one of t's result files in the output directory: a
// nested directory (actors/internal/framepool) has _ for its slashes.
func (t target) file(ext string) string {
	return strings.ReplaceAll(t.name, "/", "_") + ext
}

func main() {
	if wrapping() {
		os.Exit(wrapGo(os.Args[1:]))
	}
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "mutate:", err)
		os.Exit(2)
	}
	// An interrupt goes on to gremlins (see runTarget), which stops after
	// the mutant it is testing and removes its copies of the module.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "mutate:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("mutate", flag.ContinueOnError)
	whole := fs.String("whole", "wire,tlsio,supervisor", "directories mutated whole, each against its own package's tests (comma-separated)")
	tests := fs.String("tests", "./actors/... ./test/conformance ./test/delivery ./test/hardening ./test/chaos ./test/flowcontrol",
		"packages whose tests run on every mutant of -diff-dir, in this order (space-separated)")
	diffFiles := fs.String("diff-files", "", "mutate only the files of -diff-dir whose paths (from the module root) match this regular expression, to split a long run into parts (each with its own -out)")
	only := fs.String("only", "", "run only these targets (comma-separated directories); the report covers the others' last results")
	fs.StringVar(&cfg.goCmd, "go", "go", "the go command")
	fs.StringVar(&cfg.diffDir, "diff-dir", "actors", "the directory mutated on the lines changed since -base")
	fs.StringVar(&cfg.base, "base", "", "the commit -diff-dir's changes are counted from (git diff --merge-base); empty skips -diff-dir")
	fs.IntVar(&cfg.workers, "workers", 1, "gremlins' --workers: mutants tested at once")
	fs.IntVar(&cfg.coefficient, "timeout-coefficient", 8, "gremlins' --timeout-coefficient: a mutant's tests time out after this many times the coverage run")
	fs.DurationVar(&cfg.minTimeout, "min-timeout", time.Minute, "the least time a mutant's tests get before they time out (the coverage run is stretched to it over the coefficient)")
	fs.StringVar(&cfg.out, "out", "build/mutate", "the directory of the results and the report")
	fs.StringVar(&cfg.survivors, "survivors", "test/mutate/survivors.txt", "the list of accepted survivors")
	fs.Float64Var(&cfg.minEfficacy, "min-efficacy", 90, "the least efficacy, in percent, accepted survivors aside")
	fs.BoolVar(&cfg.reportOnly, "report-only", false, "run nothing: report the results already in -out")
	fs.BoolVar(&cfg.dryRun, "dry-run", false, "gremlins' --dry-run: find the mutants and their coverage, test none")
	fs.BoolVar(&cfg.perTest, "per-test", true, "test each mutant of -diff-dir with only the tests of -tests that run its line (each test's coverage is mapped first); false: with every test of -tests")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	cfg.whole = splitList(*whole, ",")
	cfg.tests = strings.Fields(*tests)
	cfg.only = splitList(*only, ",")
	if *diffFiles != "" {
		re, err := regexp.Compile(*diffFiles)
		if err != nil {
			return cfg, fmt.Errorf("-diff-files: %w", err)
		}
		cfg.diffFiles = re
	}
	if cfg.workers < 1 || cfg.coefficient < 1 || cfg.minTimeout < 0 {
		return cfg, errors.New("-workers and -timeout-coefficient must be at least 1, -min-timeout not negative")
	}
	if cfg.base != "" && len(cfg.tests) == 0 {
		return cfg, errors.New("-base needs -tests")
	}
	return cfg, nil
}

// splitList splits s at sep, trimmed, without empty items.
func splitList(s, sep string) []string {
	var out []string
	for _, f := range strings.Split(s, sep) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, strings.TrimSuffix(f, "/"))
		}
	}
	return out
}

// targets returns the gremlins runs cfg asks for, in order.
func (cfg config) targets() ([]target, error) {
	// common is gremlins' arguments for workers mutants tested at once.
	common := func(workers int) []string {
		args := []string{"--workers", strconv.Itoa(workers), "--timeout-coefficient", strconv.Itoa(cfg.coefficient)}
		if cfg.dryRun {
			args = append(args, "--dry-run")
		}
		return args
	}
	// integration is a target that mutates dir's files (those files
	// matches, if not nil) with more: gremlins from the module root, in
	// integration mode, its `go test ./...` standing for tests (see
	// wrapGo). gremlins halves --workers in integration mode (one mutant's
	// tests may be several packages): ask for twice as many, so that
	// -workers mutants are tested at once here too.
	integration := func(dir string, files *regexp.Regexp, tests []string, more ...string) (target, error) {
		exclude, err := excludeOthers(dir, files)
		if err != nil {
			return target{}, err
		}
		args := append(common(2*cfg.workers), "--integration", "--coverpkg", "./"+dir+"/...")
		args = append(append(args, more...), "-E", exclude, "-E", `\.pb\.go$`, ".")
		return target{name: dir, args: args, env: []string{envTests + "=" + strings.Join(tests, " ")}, tests: tests}, nil
	}
	var ts []target
	for _, dir := range cfg.whole {
		// Its own packages' tests, as gremlins runs a directory by default,
		// in integration mode so that -per-test can pick among them.
		t, err := integration(dir, nil, []string{"./" + dir + "/..."})
		if err != nil {
			return nil, err
		}
		ts = append(ts, t)
	}
	if cfg.base != "" {
		t, err := integration(cfg.diffDir, cfg.diffFiles, cfg.tests, "--diff", cfg.base)
		if err != nil {
			return nil, err
		}
		ts = append(ts, t)
	}
	if len(cfg.only) == 0 {
		return ts, nil
	}
	var picked []target
	for _, name := range cfg.only {
		found := false
		for _, t := range ts {
			if t.name == name {
				picked, found = append(picked, t), true
			}
		}
		if !found {
			return nil, fmt.Errorf("-only %s: not a target (the targets are -whole and, with -base, -diff-dir)", name)
		}
	}
	return picked, nil
}

// excludeOthers returns a pattern for gremlins' --exclude-files that matches
// every Go file of the module outside dir (which may be nested, as
// actors/internal/timer), and those inside it that files, if not nil, does
// not match: gremlins mutates the whole module when it runs from its root,
// as it must in integration mode and for --diff (whose file names are
// relative to the root).
func excludeOthers(dir string, files *regexp.Regexp) (string, error) {
	// The Go files directly in the root and in each directory on the way
	// to dir, and every other directory whole.
	others := []string{`[^/]+\.go$`}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() || path == "." {
			return err
		}
		path = filepath.ToSlash(path)
		switch {
		case path == dir:
			return fs.SkipDir
		case strings.HasPrefix(dir, path+"/"):
			others = append(others, regexp.QuoteMeta(path)+`/[^/]+\.go$`)
			return nil
		default:
			others = append(others, regexp.QuoteMeta(path)+"/")
			return fs.SkipDir
		}
	})
	if err != nil {
		return "", err
	}
	if files != nil {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(path, ".go") && !files.MatchString(filepath.ToSlash(path)) {
				others = append(others, regexp.QuoteMeta(filepath.ToSlash(path))+"$")
			}
			return err
		})
		if err != nil {
			return "", err
		}
	}
	return "^(?:" + strings.Join(others, "|") + ")", nil
}

func run(ctx context.Context, cfg config) error {
	if _, err := os.Stat("go.mod"); err != nil {
		return fmt.Errorf("run from the module root: %w", err)
	}
	list, err := readSurvivors(cfg.survivors)
	if err != nil {
		return err
	}
	ts, err := cfg.targets()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		return err
	}
	var runErr error // an interrupted run still gets its report
	if !cfg.reportOnly {
		goCmd, err := exec.LookPath(cfg.goCmd)
		if err != nil {
			return err
		}
		if goCmd, err = filepath.Abs(goCmd); err != nil {
			return err
		}
		tools, err := os.MkdirTemp("", "mutate-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tools)
		gremlins, err := buildGremlins(goCmd, tools)
		if err != nil {
			return err
		}
		wrapDir, err := wrapperDir(goCmd, tools)
		if err != nil {
			return err
		}
		for _, t := range ts {
			if err := runTarget(ctx, cfg, t, gremlins, goCmd, wrapDir); err != nil {
				runErr = fmt.Errorf("%s: %w", t.name, err)
				break
			}
		}
		if runErr != nil && !errors.Is(runErr, errInterrupted) {
			return runErr
		}
	}
	all, err := cfg.targets()
	if err != nil {
		return err
	}
	rep, err := buildReport(cfg, all, list)
	if err != nil {
		return err
	}
	text := rep.String()
	fmt.Print(text)
	path := filepath.Join(cfg.out, "report.txt")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return err
	}
	fmt.Printf("\nreport written to %s\n", path)
	if runErr != nil {
		return runErr
	}
	if low := rep.under(cfg.minEfficacy); len(low) > 0 {
		return fmt.Errorf("efficacy under %.0f%% (accepted survivors aside) in %s", cfg.minEfficacy, strings.Join(low, ", "))
	}
	return nil
}

// errInterrupted: a run was stopped before its end.
var errInterrupted = errors.New("interrupted")

// salvage writes, in gremlins' output format, the results its log at
// logPath holds.
func salvage(logPath, out string) error {
	log, err := os.ReadFile(logPath)
	if err != nil {
		return err
	}
	data, err := json.MarshalIndent(resultsFromLog(string(log)), "", "\t")
	if err != nil {
		return err
	}
	return os.WriteFile(out, data, 0o644)
}

// buildGremlins builds gremlins, at the version go.mod pins, into dir. (Run
// by `go tool`, gremlins would find GOROOT/bin first on its PATH, not the
// wrapper.)
func buildGremlins(goCmd, dir string) (string, error) {
	bin := filepath.Join(dir, "gremlins")
	cmd := exec.Command(goCmd, "build", "-o", bin, gremlinsPkg)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build %s: %w", gremlinsPkg, err)
	}
	return bin, nil
}

// gremlinsPkg is gremlins' command, a tool of go.mod.
const gremlinsPkg = "github.com/go-gremlins/gremlins/cmd/gremlins"

// runTarget runs gremlins on t, its output in a log file, with the go
// wrapper in wrapDir first on its PATH, and records how long it took and
// under what load.
func runTarget(ctx context.Context, cfg config, t target, gremlins, goCmd, wrapDir string) error {
	logPath := filepath.Join(cfg.out, t.file(".log"))
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	args := append([]string{"unleash", "-o", filepath.Join(cfg.out, t.file(".json"))}, t.args...)
	cmd := exec.CommandContext(ctx, gremlins, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Minute // the mutant under test finishes first
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// -count=1: a coverage run answered from the test cache would take a
	// second, and every mutant's tests would time out after a few.
	// The wrapper stands in for go: for the coverage run's least time, and
	// for the packages `go test ./...` tests if t says so.
	cmd.Env = append(os.Environ(), "GOFLAGS="+strings.TrimSpace(os.Getenv("GOFLAGS")+" -count=1"),
		envRealGo+"="+goCmd, "PATH="+wrapDir+string(os.PathListSeparator)+os.Getenv("PATH"),
		envCoverFloor+"="+(cfg.minTimeout/time.Duration(cfg.coefficient)).String())
	cmd.Env = append(cmd.Env, t.env...)
	load := startLoadSampler(30 * time.Second)
	start := time.Now()
	var mapNote string
	if cfg.perTest && !cfg.dryRun {
		runLog := filepath.Join(cfg.out, t.file(".runs.log"))
		mapDir := filepath.Join(filepath.Dir(wrapDir), "testmap-"+t.file(""))
		env, note, err := prepareTestMap(ctx, cfg, t, goCmd, mapDir, runLog, logFile)
		if err != nil {
			return err
		}
		cmd.Env, mapNote = append(cmd.Env, env...), note
	}
	fmt.Printf("mutate: %s: gremlins %s\n  (progress in %s)\n", t.name, strings.Join(args, " "), logPath)
	runErr := cmd.Run()
	m := runMeta{Seconds: time.Since(start).Seconds(), Load: load.stop(), Workers: cfg.workers, Coefficient: cfg.coefficient,
		MinTimeout: cfg.minTimeout.String(), Base: cfg.base, TestMap: mapNote}
	if ctx.Err() != nil {
		// gremlins writes no results when stopped; its log has every
		// mutant it tested, which the report takes instead.
		m.Interrupted = true
		if err := salvage(logPath, filepath.Join(cfg.out, t.file(".json"))); err != nil {
			return err
		}
		if err := m.write(filepath.Join(cfg.out, t.file(".meta.json"))); err != nil {
			return err
		}
		return fmt.Errorf("%w (the report counts the mutants tested until then; see %s)", errInterrupted, logPath)
	}
	if runErr != nil {
		return fmt.Errorf("gremlins: %w (see %s)", runErr, logPath)
	}
	fmt.Printf("mutate: %s done in %s\n", t.name, time.Duration(m.Seconds*float64(time.Second)).Round(time.Second))
	return m.write(filepath.Join(cfg.out, t.file(".meta.json")))
}
