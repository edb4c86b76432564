package main

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseProfile(t *testing.T) {
	profile := `mode: set
example.com/m/p/a.go:3.10,5.2 2 1
example.com/m/p/a.go:5.2,7.3 1 0
example.com/m/p/a.go:4.1,8.1 1 1
example.com/m/p/a_other.go:1.1,1.9 1 1
other.org/x/y.go:1.1,2.2 1 1
`
	got, err := parseProfile(strings.NewReader(profile), "example.com/m")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]int{"p/a.go": {3, 4, 5, 6, 7, 8}, "p/a_other.go": {1}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseProfile = %v, want %v", got, want)
	}
	for _, bad := range []string{"example.com/m/p/a.go:3.10,5.2 2", "example.com/m/p/a.go:x.1,5.2 1 1", "example.com/m/p/a.go:5.1,3.2 1 1"} {
		if _, err := parseProfile(strings.NewReader("mode: set\n"+bad+"\n"), "example.com/m"); err == nil {
			t.Errorf("parseProfile(%q): no error", bad)
		}
	}
}

func TestSelectRuns(t *testing.T) {
	m := &testMap{
		Pkgs:  []string{"m/a", "m/b", "m/c"},
		Tests: []testRef{{0, "TestOne"}, {1, "TestTwo"}, {0, "ExampleThree"}, {2, "TestFour"}},
		Lines: map[string]map[int][]int32{"p/x.go": {10: {2, 1, 0}, 11: {3}}},
	}
	flags := []string{"-timeout", "1m", "-failfast"}
	got := m.selectRuns(flags, "p/x.go", 10)
	want := [][]string{
		{"test", "-timeout", "1m", "-failfast", "-run", "^(?:ExampleThree|TestOne)$", "m/a"},
		{"test", "-timeout", "1m", "-failfast", "-run", "^(?:TestTwo)$", "m/b"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("selectRuns line 10 = %q, want %q", got, want)
	}
	if got := m.selectRuns(flags, "p/x.go", 12); got != nil {
		t.Errorf("selectRuns of a line no test ran = %q, want none", got)
	}
}

func TestMutatedLine(t *testing.T) {
	src, cp := t.TempDir(), t.TempDir()
	files := map[string]string{
		"d/a.go":      "package d\n\nfunc A(x int) bool { return x > 0 }\n",
		"d/b.go":      "package d\n\nfunc B(x int) bool {\n\treturn x < 0\n}\n",
		"d/b_test.go": "package d\n",
		"d/e/c.go":    "package e\n",
	}
	for name, text := range files {
		for _, root := range []string{src, cp} {
			if err := os.MkdirAll(filepath.Join(root, filepath.Dir(name)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, name), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, _, err := mutatedLine(src, cp, "d"); err == nil {
		t.Error("no mutant: no error")
	}
	// A test file that differs is not the mutant.
	if err := os.WriteFile(filepath.Join(cp, "d/b_test.go"), []byte("package d\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// go/printer's spacing, not gofmt's, before the mutant: not a change.
	if err := os.WriteFile(filepath.Join(cp, "d/b.go"), []byte("package d\n\nfunc B(x int)  bool {\n\treturn x <= 0 // now\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if file, line, err := mutatedLine(src, cp, "d"); err != nil || file != "d/b.go" || line != 4 {
		t.Errorf("mutatedLine = %s:%d, %v; want d/b.go:4", file, line, err)
	}
}

// The map of a small module: each test is mapped to the lines it ran, and
// only those.
func TestBuildTestMap(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	root := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/m\n\ngo 1.22\n")
	write("p/p.go", `package p

func Sign(x int) int {
	if x > 0 {
		return 1
	}
	return -1
}

func Size(x int) string {
	switch {
	case x > 100:
		return "big"
	case x > 10 &&
		x < 50:
		return "mid"
	}
	return "small"
}
`)
	write("p/p_test.go", `package p

import "testing"

func TestPositive(t *testing.T) {
	if Sign(2) != 1 {
		t.Fatal("2")
	}
}

func TestNegative(t *testing.T) {
	if Sign(-2) != -1 {
		t.Fatal("-2")
	}
}

func TestSize(t *testing.T) {
	if Size(5) != "small" {
		t.Fatal("5")
	}
}

func BenchmarkSign(b *testing.B) {
	for range b.N {
		Sign(1)
	}
}
`)
	t.Chdir(root)
	pkgs, err := listTestPkgs(goCmd, []string{"./..."})
	if err != nil || len(pkgs) != 1 || pkgs[0].ImportPath != "example.com/m/p" {
		t.Fatalf("listTestPkgs = %+v, %v", pkgs, err)
	}
	m, err := buildTestMap(context.Background(), goCmd, "example.com/m", "./p/...", pkgs, t.TempDir(), 2, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	names := func(line int) []string {
		var out []string
		for _, i := range m.Lines["p/p.go"][line] {
			out = append(out, m.Tests[i].Name)
		}
		return out
	}
	if len(m.Tests) != 3 {
		t.Errorf("tests %+v, want TestPositive, TestNegative and TestSize (no benchmark)", m.Tests)
	}
	if got := names(5); !reflect.DeepEqual(got, []string{"TestPositive"}) {
		t.Errorf("line 5 (return 1) ran by %q, want TestPositive", got)
	}
	if got := names(7); !reflect.DeepEqual(got, []string{"TestNegative"}) {
		t.Errorf("line 7 (return -1) ran by %q, want TestNegative", got)
	}
	if got := names(4); len(got) != 2 {
		t.Errorf("line 4 (the if) ran by %q, want both", got)
	}
	// Go's coverage puts a case's expressions in no block: the map has
	// them as the switch's.
	for _, line := range []int{12, 14} {
		if got := names(line); !reflect.DeepEqual(got, []string{"TestSize"}) {
			t.Errorf("line %d (a case) ran by %q, want TestSize", line, got)
		}
	}
	if got := names(13); got != nil {
		t.Errorf("line 13 (return \"big\") ran by %q, want none", got)
	}
}

// withCaseBlocks adds a block for each case clause's expressions, counted
// as the block that holds its switch, and leaves other files alone.
func TestWithCaseBlocks(t *testing.T) {
	root := t.TempDir()
	src := `package p

func F(x int) string {
	y := x * 2
	switch {
	case y > 10:
		return "big"
	case y > 4 &&
		y < 8:
		return "mid"
	}
	switch x {
	case 1, 2:
		return "one"
	}
	switch v := any(x).(type) {
	case int:
		_ = v
	}
	return "small"
}
`
	if err := os.MkdirAll(filepath.Join(root, "p"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "p/a.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	profile := `mode: set
example.com/m/p/a.go:3.22,5.9 2 1
example.com/m/p/a.go:6.14,7.15 1 0
example.com/m/p/a.go:9.9,10.15 1 1
example.com/m/p/a.go:12.2,12.11 1 0
example.com/m/p/a.go:13.12,14.15 1 0
other.org/x/y.go:1.1,2.2 1 1
`
	got, err := newCaseIndex(root, "example.com/m").withCaseBlocks([]byte(profile))
	if err != nil {
		t.Fatal(err)
	}
	want := profile + `example.com/m/p/a.go:6.7,6.13 1 1
example.com/m/p/a.go:8.7,9.8 1 1
example.com/m/p/a.go:13.7,13.11 1 0
`
	if string(got) != want {
		t.Errorf("withCaseBlocks =\n%s\nwant\n%s", got, want)
	}
	if _, err := newCaseIndex(root, "example.com/m").withCaseBlocks([]byte("mode: set\nexample.com/m/p/a.go:3.22 2 1\n")); err == nil {
		t.Error("a bad block: no error")
	}
}
