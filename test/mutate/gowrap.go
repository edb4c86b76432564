package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The environment of the wrapper: this command, run as "go" from gremlins'
// PATH (see the package doc).
const (
	envRealGo     = "MUTATE_REAL_GO"     // the real go command
	envTests      = "MUTATE_TEST_PKGS"   // the packages `go test ./...` becomes
	envCoverFloor = "MUTATE_COVER_FLOOR" // the least time the coverage run takes
	envTestMap    = "MUTATE_TEST_MAP"    // the test map's file, if mutants run only the tests of their line
	envSource     = "MUTATE_SOURCE"      // the module root the mutants are copies of
	envDiffDir    = "MUTATE_DIFF_DIR"    // the directory whose lines are mutated
	envRunLog     = "MUTATE_RUN_LOG"     // where the wrapper notes the tests it picked for each mutant
)

// wrapping reports whether this process is the wrapper.
func wrapping() bool {
	return filepath.Base(os.Args[0]) == "go" && os.Getenv(envRealGo) != ""
}

// wrapperDir makes a directory under dir holding a link named go to this
// executable, for gremlins' PATH, and returns it.
func wrapperDir(goCmd, dir string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	if filepath.Base(self) == "go" || self == goCmd {
		return "", fmt.Errorf("this executable %s cannot stand in for go", self)
	}
	wrap := filepath.Join(dir, "wrap")
	if err := os.Mkdir(wrap, 0o755); err != nil {
		return "", err
	}
	return wrap, os.Symlink(self, filepath.Join(wrap, "go"))
}

// wrapGo runs the real go with args, except that `go test [flags] ./...`
// tests the packages of envTests instead (see goRuns). The coverage run
// (`go test` with -coverprofile) lasts at least envCoverFloor: gremlins
// times a mutant's tests out after its coefficient times that run, and
// with the build cache warm the run of a small package takes a second or
// two, a timeout a loaded machine passes without any hang. It returns the
// exit code of the last go run.
func wrapGo(args []string) int {
	realGo := os.Getenv(envRealGo)
	if floor, err := time.ParseDuration(os.Getenv(envCoverFloor)); err == nil && isCoverageRun(args) {
		defer sleepUntil(time.Now().Add(floor))
	}
	runs := goRuns(args, strings.Fields(os.Getenv(envTests)))
	if sel := selectedRuns(args); sel != nil {
		runs = sel
	}
	for _, run := range runs {
		if code := runGo(realGo, run); code != 0 {
			return code
		}
	}
	if isCoverageRun(args) {
		if err := addCaseBlocks(args); err != nil {
			fmt.Fprintln(os.Stderr, "mutate (as go):", err)
			return 1
		}
	}
	return 0
}

// addCaseBlocks adds the case clauses' blocks to the profile of the
// coverage run `go args`, run from inside the module.
func addCaseBlocks(args []string) error {
	i := slices.Index(args, "-coverprofile")
	if i < 0 || i+1 >= len(args) {
		return fmt.Errorf("no profile in %q", args)
	}
	profile, err := filepath.Abs(args[i+1])
	if err != nil {
		return err
	}
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	for {
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			break
		}
		up := filepath.Dir(root)
		if up == root {
			return errors.New("no go.mod above the coverage run's directory")
		}
		root = up
	}
	module, err := modulePath(root)
	if err != nil {
		return err
	}
	return newCaseIndex(root, module).addCaseBlocksToFile(profile)
}

// isCoverageRun reports whether args are gremlins' coverage run.
func isCoverageRun(args []string) bool {
	return len(args) > 0 && args[0] == "test" && slices.Contains(args, "-coverprofile")
}

// sleepUntil sleeps until t, if it is still to come.
func sleepUntil(t time.Time) { time.Sleep(time.Until(t)) }

// goRuns returns the go commands that stand for `go args`, to run in order
// up to the first that fails: `go test [flags] ./...` becomes pkgs, all in
// one run for the coverage run (it has -coverprofile), one run each for a
// mutant; any other command is left as it is.
func goRuns(args, pkgs []string) [][]string {
	if len(args) < 2 || args[0] != "test" || args[len(args)-1] != "./..." || len(pkgs) == 0 {
		return [][]string{args}
	}
	flags := args[1 : len(args)-1]
	if isCoverageRun(args) {
		return [][]string{append(slices.Clone(args[:len(args)-1]), pkgs...)}
	}
	var runs [][]string
	for _, pkg := range pkgs {
		runs = append(runs, append(append([]string{"test"}, flags...), pkg))
	}
	return runs
}

// selectedRuns returns, for a mutant's `go test [flags] ./...` with a
// test map, the runs of the tests that ran the mutated line; nil to run
// every package (no map, not a mutant's run, or a line no test in the map
// ran, which gremlins' own coverage run saw run).
func selectedRuns(args []string) [][]string {
	path := os.Getenv(envTestMap)
	if path == "" || isCoverageRun(args) || len(args) < 2 || args[0] != "test" || args[len(args)-1] != "./..." {
		return nil
	}
	m, err := readTestMap(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mutate (as go):", err)
		return nil
	}
	file, line, err := mutatedLine(os.Getenv(envSource), ".", os.Getenv(envDiffDir))
	if err != nil {
		fmt.Fprintln(os.Stderr, "mutate (as go):", err)
		return nil
	}
	runs := m.selectRuns(args[1:len(args)-1], file, line)
	note := fmt.Sprintf("%s:%d: no test in the map runs it: every package\n", file, line)
	if len(runs) > 0 {
		var b strings.Builder
		for _, r := range runs {
			fmt.Fprintf(&b, "%s:%d: go %s\n", file, line, strings.Join(r, " "))
		}
		note = b.String()
	}
	if f, err := os.OpenFile(os.Getenv(envRunLog), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
		_, _ = f.WriteString(note)
		_ = f.Close()
	}
	if len(runs) == 0 {
		return nil
	}
	return runs
}

// runGo runs the real go with args, its output to ours, and returns its exit
// code.
func runGo(realGo string, args []string) int {
	cmd := exec.Command(realGo, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit) && exit.ExitCode() > 0:
		return exit.ExitCode()
	default:
		fmt.Fprintln(os.Stderr, "mutate (as go):", err)
		return 1
	}
}
