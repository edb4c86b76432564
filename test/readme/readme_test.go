package readme

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// notCompiled starts the marker of a Go block that cannot be compiled in
// this module, followed by the reason (a module it does not require).
const notCompiled = "not compiled:"

// commandLineSection is the README section whose shell blocks must all be
// marked run (or not run, with the reason).
const commandLineSection = "Command line"

// programTimeout bounds one run of a README program.
const programTimeout = 2 * time.Minute

// check is what checkMarkdown found: problems, each naming its block, and
// how many blocks passed.
type check struct {
	problems    []problem
	compiled    int // Go blocks that compiled
	notCompiled int // Go blocks marked not compiled, with the reason
	ran         int // Go programs and shell blocks that ran as shown
}

// problem is a failure, and the line that orders it among the others.
type problem struct {
	line int
	err  error
}

func (c *check) fail(line int, err error) { c.problems = append(c.problems, problem{line, err}) }

// errs returns the problems in the order of the README.
func (c *check) errs() []error {
	slices.SortStableFunc(c.problems, func(a, b problem) int { return a.line - b.line })
	var errs []error
	for _, p := range c.problems {
		errs = append(errs, p.err)
	}
	return errs
}

// repoRoot returns the module's root, two levels above this package.
func repoRoot(t testing.TB) string {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("no go.mod at the module root: %v", err)
	}
	return root
}

// checkMarkdown checks the code blocks of the Markdown file at path (named
// file in messages), building in the module at root: every Go block
// compiles, the blocks with an output block print it, and the shell blocks
// marked run succeed. section, if not empty, is a section whose shell blocks
// must all be marked.
func checkMarkdown(t *testing.T, root, path, file, section string) *check {
	ctx := context.Background()
	if d, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-10*time.Second))
		defer cancel()
	}
	c := &check{}
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blocks, errs := parseMarkdown(path, file, string(text))
	for _, err := range errs {
		c.fail(0, err)
	}

	// Sort the blocks out: Go sources to build, shell blocks to run.
	var (
		goFiles    []*goFile
		shells     []*block
		sawSection bool
	)
	sources := map[string]string{}
	dirOf := func(b *block) string { return fmt.Sprintf("l%04d", b.fence) }
	for _, b := range blocks {
		sawSection = sawSection || b.section == section
		switch {
		case b.lang == "go" && strings.HasPrefix(b.marker, notCompiled):
			if strings.TrimSpace(strings.TrimPrefix(b.marker, notCompiled)) == "" {
				c.fail(b.fence, fmt.Errorf("%s: %q without a reason", b.where(), b.marker))
			} else if b.output != nil {
				c.fail(b.fence, fmt.Errorf("%s: an output block (line %d) follows a block that is not compiled", b.where(), b.output.fence))
			}
			c.notCompiled++
			t.Logf("%s: %s", b.where(), b.marker)
		case b.lang == "go":
			gf, err := makeGoFile(b)
			if err != nil {
				c.fail(b.fence, fmt.Errorf("%s: %w", b.where(), err))
				continue
			}
			goFiles = append(goFiles, gf)
			sources[dirOf(b)] = gf.src
		case b.isShell():
			switch {
			case b.marker == "run":
				shells = append(shells, b)
			case b.marker == "" && section != "" && b.section == section:
				c.fail(b.fence, fmt.Errorf(`%s: a shell block of the %q section with no marker: put <!-- readme: run --> (or <!-- readme: not run: REASON -->) on the line right above its fence`, b.where(), section))
			case b.marker != "" && (!strings.HasPrefix(b.marker, "not run:") || strings.TrimSpace(strings.TrimPrefix(b.marker, "not run:")) == ""):
				c.fail(b.fence, fmt.Errorf(`%s: unknown marker %q on a shell block: use "run" or "not run: REASON"`, b.where(), b.marker))
			}
			if b.output != nil && b.marker != "run" {
				c.fail(b.fence, fmt.Errorf("%s: an output block (line %d) follows it, but it is not marked run", b.where(), b.output.fence))
			}
		case b.marker != "":
			c.fail(b.fence, fmt.Errorf("%s: marker %q on a block that is neither Go nor shell", b.where(), b.marker))
		case b.output != nil:
			c.fail(b.fence, fmt.Errorf("%s: an output block (line %d) follows a block that is neither Go nor shell", b.where(), b.output.fence))
		}
	}
	if section != "" && !sawSection {
		c.fail(0, fmt.Errorf("%s: no code block in a section %q: if it was renamed, change commandLineSection in test/readme", file, section))
	}

	// Build every Go block and tokencat in one go build.
	tmp := t.TempDir()
	var extra []string
	for _, b := range shells {
		if strings.Contains(b.body, "tokencat") {
			extra = []string{"./examples/tokencat"}
		}
	}
	mains := map[string]bool{}
	for _, gf := range goFiles {
		mains[dirOf(gf.b)] = gf.main
	}
	start := time.Now()
	res, err := goBuild(ctx, root, tmp, sources, mains, extra)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("go build of %d Go blocks %s: %v", len(sources), strings.Join(extra, " "), time.Since(start).Round(time.Millisecond))
	// Messages name the README as file, wherever go build found it.
	rel, _ := filepath.Rel(root, path)
	named := func(s string) string {
		return strings.ReplaceAll(strings.ReplaceAll(s, path, file), "."+string(filepath.Separator)+rel, file)
	}
	if res.failed && strings.TrimSpace(res.other) != "" {
		c.fail(0, fmt.Errorf("go build failed:\n%s", indent(named(res.other))))
	}

	for _, gf := range goFiles {
		b := gf.b
		if e := res.errs[dirOf(b)]; e != "" {
			c.fail(b.fence, fmt.Errorf("%s: does not compile:\n%s", b.where(), indent(named(e))))
			continue
		}
		c.compiled++
		if !gf.run {
			continue
		}
		start := time.Now()
		if err := runProgram(ctx, b, filepath.Join(res.bin, dirOf(b)), t.TempDir()); err != nil {
			c.fail(b.fence, err)
			continue
		}
		c.ran++
		t.Logf("%s:%d ran as shown: %v", file, b.fence, time.Since(start).Round(time.Millisecond))
	}

	if len(shells) == 0 {
		return c
	}
	if !canRunShell {
		t.Logf("shell blocks not run: they need unix")
		return c
	}
	tokencat := filepath.Join(res.bin, "tokencat")
	if e := res.errs[modulePathOrEmpty(root)+"/examples/tokencat"]; e != "" {
		c.fail(shells[0].fence, fmt.Errorf("tokencat, for the shell blocks, does not compile:\n%s", indent(e)))
		return c
	}
	if _, err := exec.LookPath("bash"); err != nil {
		c.fail(shells[0].fence, fmt.Errorf("%s: bash is needed to run the shell blocks: %w", shells[0].where(), err))
		return c
	}
	scratch, ports := t.TempDir(), newFreePorts()
	for _, b := range shells {
		start := time.Now()
		if err := runShell(ctx, b, scratch, tmp, tokencat, ports); err != nil {
			c.fail(b.fence, err)
			continue
		}
		c.ran++
		t.Logf("%s:%d ran as shown: %v", file, b.fence, time.Since(start).Round(time.Millisecond))
	}
	return c
}

// modulePathOrEmpty is the module path of root, "" if go.mod has none.
func modulePathOrEmpty(root string) string {
	mod, _ := modulePath(root)
	return mod
}

// runProgram runs the program built from a Go block in dir and checks that
// it prints the block's output.
func runProgram(ctx context.Context, b *block, exe, dir string) error {
	ctx, cancel := context.WithTimeout(ctx, programTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe)
	cmd.Dir = dir
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		return fmt.Errorf("%s: did not finish within %v\nstdout:\n%s\nstderr:\n%s", b.where(), programTimeout, indent(stdout.String()), indent(stderr.String()))
	}
	if err != nil {
		return fmt.Errorf("%s: %w\nstdout:\n%s\nstderr:\n%s", b.where(), err, indent(stdout.String()), indent(stderr.String()))
	}
	if !matchOutput(b.output.body, stdout.String()) {
		return fmt.Errorf("%s: prints something else than its output block (%s:%d): %s\nwant:\n%s\ngot:\n%s\nstderr:\n%s",
			b.where(), b.file, b.output.fence, mismatch(b.output, stdout.String()), indent(b.output.body), indent(stdout.String()), indent(stderr.String()))
	}
	return nil
}

// TestREADME checks every code block of the README that can be checked:
// see the package doc for how blocks are marked.
func TestREADME(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("the go command is needed to build the README's Go blocks: %v", err)
	}
	root := repoRoot(t)
	c := checkMarkdown(t, root, filepath.Join(root, "README.md"), "README.md", commandLineSection)
	for _, err := range c.errs() {
		t.Error(err)
	}
	t.Logf("%d Go blocks compiled, %d marked not compiled; %d programs and shell blocks ran as shown", c.compiled, c.notCompiled, c.ran)
	if c.compiled == 0 || c.ran == 0 {
		t.Errorf("nothing checked: %d Go blocks compiled, %d blocks ran", c.compiled, c.ran)
	}
}

// errorsMatching returns the errors whose text contains every one of parts.
func errorsMatching(errs []error, parts ...string) []error {
	var found []error
	for _, err := range errs {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(err.Error(), p)
		}
		if ok {
			found = append(found, err)
		}
	}
	return found
}

// TestCheckFindsBrokenBlocks shows that the check fails, naming the block
// and the reason, for each kind of broken block, and passes the good ones.
func TestCheckFindsBrokenBlocks(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("the go command is needed: %v", err)
	}
	const md = "# Doc\n" + // 1
		"\n" + // 2
		"```go\n" + // 3: neither a program nor marked
		"fmt.Println(\"unmarked\")\n" + // 4
		"```\n" + // 5
		"\n" + // 6
		"<!-- readme: fragment of main -->\n" + // 7
		"```go\n" + // 8: does not compile
		"x := 1\n" + // 9
		"fmt.Println(notDeclared)\n" + // 10
		"```\n" + // 11
		"\n" + // 12
		"```go\n" + // 13: a program that prints something else
		"package main\n" + // 14
		"\n" + // 15
		"import \"fmt\"\n" + // 16
		"\n" + // 17
		"func main() { fmt.Println(\"hello\") }\n" + // 18
		"```\n" + // 19
		"<!-- readme: output -->\n" + // 20
		"```\n" + // 21
		"goodbye\n" + // 22
		"```\n" + // 23
		"<!-- readme: fragment of main -->\n" + // 24
		"```go\n" + // 25: a fragment that prints what it shows
		"for i := range 3 {\n" + // 26
		"\tfmt.Println(\"line\", i, \"of\", os.Args[0] != \"\")\n" + // 27
		"}\n" + // 28
		"```\n" + // 29
		"<!-- readme: output -->\n" + // 30
		"```\n" + // 31
		"line 0 of true\n" + // 32
		"...\n" + // 33
		"```\n" + // 34
		"<!-- readme: fragment of func(ctx context.Context) error -->\n" + // 35
		"```go\n" + // 36: missing return
		"<-ctx.Done()\n" + // 37
		"```\n" + // 38
		"\n" + // 39
		"## Command line\n" + // 40
		"\n" + // 41
		"<!-- readme: run -->\n" + // 42
		"```sh\n" + // 43: a shell block that fails
		"echo one\n" + // 44
		"test -f no-such-file\n" + // 45
		"echo two\n" + // 46
		"```\n" + // 47
		"<!-- readme: run -->\n" + // 48
		"```sh\n" + // 49: a shell block whose port is replaced, then put back
		"echo listening on 127.0.0.1:7878\n" + // 50
		"```\n" + // 51
		"<!-- readme: output -->\n" + // 52
		"```\n" + // 53
		"listening on 127.0.0.1:7878\n" + // 54
		"```\n" + // 55
		"```sh\n" + // 56: unmarked in the Command line section
		"ls\n" + // 57
		"```\n" + // 58
		"<!-- readme: run -->\n" + // 59: a marker that is not above a fence
		"\n" + // 60
		"Some prose.\n" + // 61
		"<!-- readme: run -->\n" + // 62
		"```sh\n" + // 63
		"go version\n" + // 64: a go command the shim does not answer
		"```\n" + // 65
		"<!-- readme: not compiled: it needs a module this one does not require -->\n" + // 66
		"```go\n" + // 67: not compiled, with the reason
		"import \"example.com/absent\"\n" + // 68
		"```\n" + // 69
		"<!-- readme: not compiled: -->\n" + // 70
		"```go\n" + // 71: not compiled, without a reason
		"x := 1\n" + // 72
		"```\n" // 73
	path := filepath.Join(t.TempDir(), "DOC.md")
	if err := os.WriteFile(path, []byte(md), 0o644); err != nil {
		t.Fatal(err)
	}
	c := checkMarkdown(t, repoRoot(t), path, "DOC.md", commandLineSection)
	errs := c.errs()
	for _, err := range errs {
		t.Logf("found: %v", err)
	}
	want := [][]string{
		{`DOC.md:3: go block "fmt.Println(\"unmarked\")": neither a complete program`},
		{`DOC.md:8: go block "x := 1": does not compile`, "DOC.md:10:", "undefined: notDeclared"},
		{`DOC.md:13: go block "package main": prints something else than its output block (DOC.md:21)`, "goodbye", "hello"},
		{`DOC.md:36: go block "<-ctx.Done()": does not compile`, "DOC.md:38:", "missing return"},
		{`DOC.md:56: sh block "ls": a shell block of the "Command line" section with no marker`},
		{`DOC.md:59: a readme marker must be on the line right above a fence`},
		{`DOC.md:71: go block "x := 1": "not compiled:" without a reason`},
		// Only where shell blocks run:
		{`DOC.md:43: sh block "echo one": exit status 1 at DOC.md:45: test -f no-such-file`},
		{`DOC.md:63: sh block "go version": exit status 1 at DOC.md:64: go version`, "a shell block may run go only as"},
	}
	compiled, ran := 2, 2 // the fragment of main, and the shell block whose port came back
	if !canRunShell {
		want, ran = want[:7], 1
	}
	for _, w := range want {
		if len(errorsMatching(errs, w...)) != 1 {
			t.Errorf("want one error with %q", w)
		}
	}
	if len(errs) != len(want) {
		t.Errorf("%d errors, want %d", len(errs), len(want))
	}
	if c.compiled != compiled {
		t.Errorf("%d Go blocks compiled, want %d", c.compiled, compiled)
	}
	if c.notCompiled != 2 {
		t.Errorf("%d Go blocks not compiled, want 2", c.notCompiled)
	}
	if c.ran != ran {
		t.Errorf("%d blocks ran as shown, want %d", c.ran, ran)
	}
}

// TestLoneProgramWritesNothing checks that a complete program shown without
// output is compiled without writing its executable into the module (go
// build without -o writes a lone main package's executable there).
func TestLoneProgramWritesNothing(t *testing.T) {
	const md = "```go\n" +
		"package main\n" +
		"\n" +
		"func main() {}\n" +
		"```\n"
	root := repoRoot(t)
	exe := filepath.Join(root, "l0001") // the block's package directory, named for its fence's line
	path := filepath.Join(t.TempDir(), "DOC.md")
	if err := os.WriteFile(path, []byte(md), 0o644); err != nil {
		t.Fatal(err)
	}
	c := checkMarkdown(t, root, path, "DOC.md", "")
	for _, err := range c.errs() {
		t.Error(err)
	}
	if c.compiled != 1 {
		t.Errorf("%d Go blocks compiled, want 1", c.compiled)
	}
	if _, err := os.Stat(exe); err == nil {
		t.Errorf("the check wrote %s", exe)
		_ = os.Remove(exe)
	}
}
