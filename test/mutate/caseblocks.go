package main

import (
	"bufio"
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Go's coverage leaves the expressions of a switch's case clauses out of
// every block: the block before the switch ends at its opening brace, and
// each clause's block starts after its colon. gremlins takes a mutant
// there (a case's comparison, its arithmetic) for one no test runs, and
// never tests it; a test map built from the same profiles picks no test
// for it. So every profile this command reads or hands to gremlins first
// gets a block for each case clause's expressions, counted as the block
// that holds the switch statement: a clause's expressions run when the
// switch does and no case before it matched, which the profile cannot
// tell, so a mutant there is tested whenever its switch runs.

// caseSpan is where a case clause's expressions are, and where their
// switch statement starts.
type caseSpan struct {
	switchAt   pos
	start, end pos
}

// pos is a line and column, as a coverage profile gives them.
type pos struct{ line, col int }

func (p pos) before(q pos) bool { return p.line < q.line || p.line == q.line && p.col < q.col }

// caseIndex finds and keeps the case clauses of the module's files.
type caseIndex struct {
	root, module string
	mu           sync.Mutex
	files        map[string][]caseSpan // by path from the module root
}

func newCaseIndex(root, module string) *caseIndex {
	return &caseIndex{root: root, module: module, files: map[string][]caseSpan{}}
}

// spans returns the case clauses of the file at rel (from the module root).
func (x *caseIndex) spans(rel string) ([]caseSpan, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if s, ok := x.files[rel]; ok {
		return s, nil
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, filepath.Join(x.root, rel), nil, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	at := func(p token.Pos) pos {
		q := fset.Position(p)
		return pos{q.Line, q.Column}
	}
	var out []caseSpan
	ast.Inspect(f, func(n ast.Node) bool {
		sw, ok := n.(*ast.SwitchStmt) // a type switch's cases are types
		if !ok {
			return true
		}
		for _, s := range sw.Body.List {
			if cc := s.(*ast.CaseClause); len(cc.List) > 0 {
				out = append(out, caseSpan{at(sw.Pos()), at(cc.List[0].Pos()), at(cc.List[len(cc.List)-1].End())})
			}
		}
		return true
	})
	x.files[rel] = out
	return out, nil
}

// profileBlock is one block of a coverage profile.
type profileBlock struct {
	start, end pos
	count      int
}

// withCaseBlocks returns profile (a coverage profile's text) with a block
// for the expressions of each case clause of the module's files it counts,
// whose count is the largest of the blocks that hold the clause's switch
// statement. Files outside the module are left as they are.
func (x *caseIndex) withCaseBlocks(profile []byte) ([]byte, error) {
	blocks := map[string][]profileBlock{} // by import path
	var order []string
	sc := bufio.NewScanner(bytes.NewReader(profile))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "mode:") || line == "" {
			continue
		}
		file, b, err := parseBlock(line)
		if err != nil {
			return nil, err
		}
		if _, ok := blocks[file]; !ok {
			order = append(order, file)
		}
		blocks[file] = append(blocks[file], b)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	out := bytes.NewBuffer(append([]byte(nil), profile...))
	if n := out.Len(); n > 0 && profile[n-1] != '\n' {
		out.WriteByte('\n')
	}
	for _, file := range order {
		rel, ok := strings.CutPrefix(file, x.module+"/")
		if !ok {
			continue
		}
		spans, err := x.spans(rel)
		if err != nil {
			return nil, fmt.Errorf("coverage profile: %w", err)
		}
		for _, s := range spans {
			count, held := 0, false
			for _, b := range blocks[file] {
				if !s.switchAt.before(b.start) && !b.end.before(s.switchAt) {
					count, held = max(count, b.count), true
				}
			}
			if held {
				fmt.Fprintf(out, "%s:%d.%d,%d.%d 1 %d\n", file, s.start.line, s.start.col, s.end.line, s.end.col, count)
			}
		}
	}
	return out.Bytes(), nil
}

// parseBlock reads one block line of a coverage profile:
// "path/file.go:12.3,15.2 4 1" (start, end, statements, count).
func parseBlock(line string) (string, profileBlock, error) {
	colon := strings.LastIndexByte(line, ':')
	if colon < 0 {
		return "", profileBlock{}, fmt.Errorf("coverage profile: bad line %q", line)
	}
	fields := strings.Fields(line[colon+1:])
	var b profileBlock
	var err error
	if len(fields) != 3 {
		return "", b, fmt.Errorf("coverage profile: bad line %q", line)
	}
	start, end, ok := strings.Cut(fields[0], ",")
	if b.start, err = parsePos(start); ok && err == nil {
		b.end, err = parsePos(end)
	}
	if err == nil {
		b.count, err = strconv.Atoi(fields[2])
	}
	if !ok || err != nil || b.end.before(b.start) {
		return "", b, fmt.Errorf("coverage profile: bad block %q", line)
	}
	return line[:colon], b, nil
}

// parsePos reads "line.col".
func parsePos(s string) (pos, error) {
	l, c, ok := strings.Cut(s, ".")
	line, err1 := strconv.Atoi(l)
	col, err2 := strconv.Atoi(c)
	if !ok || err1 != nil || err2 != nil {
		return pos{}, fmt.Errorf("bad position %q", s)
	}
	return pos{line, col}, nil
}

// addCaseBlocksToFile rewrites the coverage profile at path with
// withCaseBlocks.
func (x *caseIndex) addCaseBlocksToFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if data, err = x.withCaseBlocks(data); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// modulePath reads the module path from the go.mod in root.
func modulePath(root string) (string, error) {
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`), nil
		}
	}
	return "", fmt.Errorf("%s/go.mod names no module", root)
}
