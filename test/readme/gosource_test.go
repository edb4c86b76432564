package readme

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/scanner"
	"go/token"
	"path"
	"slices"
	"strconv"
	"strings"
)

// knownImports are the packages a fragment may name without importing
// them, by the name it uses.
var knownImports = map[string]string{
	"actor":      "github.com/asynkron/protoactor-go/actor",
	"actors":     "github.com/tokenserver/tokenserver/actors",
	"cluster":    "github.com/tokenserver/tokenserver/actors/cluster",
	"supervisor": "github.com/tokenserver/tokenserver/supervisor",
	"tlsio":      "github.com/tokenserver/tokenserver/tlsio",
	"wire":       "github.com/tokenserver/tokenserver/wire",
	"bytes":      "bytes",
	"context":    "context",
	"errors":     "errors",
	"fmt":        "fmt",
	"http":       "net/http",
	"io":         "io",
	"log":        "log",
	"net":        "net",
	"os":         "os",
	"signal":     "os/signal",
	"slog":       "log/slog",
	"strings":    "strings",
	"sync":       "sync",
	"time":       "time",
	"tls":        "crypto/tls",
}

// hole is where a fragment goes in a marker's template.
const hole = "..."

// goFile is the Go source made from a ```go block of the README.
type goFile struct {
	b    *block
	src  string
	run  bool // a program to run: its output is shown
	main bool // package main: go build links it
}

// errNotGo says how to mark a Go block that is neither a program nor a
// fragment.
var errNotGo = errors.New(`neither a complete program (it would start with a package clause) nor marked as a fragment: ` +
	`put <!-- readme: fragment of main --> (or "of a file", "of func(PARAMS)", "of TEMPLATE" with ... for the block) on the line right above its fence; ` +
	`a block that needs a module go.mod does not require is marked <!-- readme: not compiled: REASON -->`)

// template returns the Go source around a fragment, split at the hole, for
// the text of a "fragment of" marker. A template that starts with "func("
// is a function named _; without a hole the block is its body.
func template(of string) (head, tail string, err error) {
	if rest, ok := strings.CutPrefix(of, "func("); ok {
		of = "func _(" + rest
		if !strings.Contains(of, hole) {
			return of + " {\n", "}\n", nil
		}
	}
	switch {
	case of == "main":
		return "func main() {\n", "}\n", nil
	case of == "a file":
		return "", "", nil
	case strings.Contains(of, hole):
		i := strings.Index(of, hole)
		return of[:i] + "\n", of[i+len(hole):] + "\n", nil
	}
	return "", "", fmt.Errorf(`unknown fragment template %q: use "main", "a file", "func(PARAMS) RESULTS" or Go source with ... for the block`, of)
}

// lineDirective makes the lines after it count from line of file.
func lineDirective(file string, line int) string {
	return fmt.Sprintf("\n//line %s:%d:1\n", file, line)
}

// leadingImports returns the length of the import declarations at the start
// of a fragment, 0 without any.
func leadingImports(body string) int {
	fset := token.NewFileSet()
	src := []byte(body)
	var s scanner.Scanner
	s.Init(fset.AddFile("", -1, len(src)), src, nil, 0)
	scan := func() (int, token.Token, string) {
		for {
			pos, tok, lit := s.Scan()
			if tok != token.SEMICOLON {
				return fset.Position(pos).Offset, tok, lit
			}
		}
	}
	end := 0
	for {
		if _, tok, _ := scan(); tok != token.IMPORT {
			return end
		}
		off, tok, lit := scan()
		if tok == token.IDENT || tok == token.PERIOD { // a name for the package
			off, tok, lit = scan()
		}
		switch tok {
		case token.STRING:
			end = off + len(lit)
		case token.LPAREN:
			for tok != token.RPAREN && tok != token.EOF {
				off, tok, _ = scan()
			}
			if tok == token.EOF {
				return end
			}
			end = off + 1
		default:
			return end
		}
	}
}

// isProgram tells whether a Go block starts with a package clause.
func isProgram(body string) bool {
	for _, l := range strings.Split(body, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "//") {
			continue
		}
		return strings.HasPrefix(l, "package ")
	}
	return false
}

// makeGoFile returns the Go source for a ```go block: the block as it is if
// it is a program, or wrapped as its marker says, with //line directives
// that point every line of the block at its line in the README.
func makeGoFile(b *block) (*goFile, error) {
	first := b.fence + 1 // README line of the block's first line
	last := first + strings.Count(b.body, "\n")
	gf := &goFile{b: b, run: b.output != nil}
	if b.marker == "" && isProgram(b.body) {
		gf.src = strings.TrimPrefix(lineDirective(b.path, first), "\n") + b.body
		gf.main = packageName(gf.src) == "main"
		if gf.run && !declaresMain(gf.src) {
			return nil, errors.New("an output block follows it, but it is not a program (package main with func main)")
		}
		return gf, nil
	}
	of, ok := strings.CutPrefix(b.marker, "fragment of ")
	if !ok {
		if b.marker == "" {
			return nil, errNotGo
		}
		return nil, fmt.Errorf("unknown marker %q on a Go block: use fragment of main, of a file, of func(PARAMS), or of a template with ...", b.marker)
	}
	head, tail, err := template(of)
	if err != nil {
		return nil, err
	}
	n := leadingImports(b.body)
	imports, rest := b.body[:n], b.body[n:]
	restLine := first + strings.Count(imports, "\n")

	// compose puts the parts together, with the imports the fragment names
	// and a use of each variable it declares.
	pkg := "readmeblock"
	if gf.run {
		pkg = "main"
	}
	compose := func(auto []string, uses []string) (src string, restStart, restEnd int) {
		var s strings.Builder
		fmt.Fprintf(&s, "package %s\n", pkg)
		for _, p := range auto {
			fmt.Fprintf(&s, "import %q\n", p)
		}
		if imports != "" {
			s.WriteString(lineDirective(b.path, first))
			s.WriteString(imports)
		}
		s.WriteString(lineDirective(b.path, b.fence))
		s.WriteString(head)
		s.WriteString(lineDirective(b.path, restLine))
		restStart = s.Len()
		s.WriteString(rest)
		restEnd = s.Len()
		if len(uses) > 0 {
			fmt.Fprintf(&s, "\n%s = %s\n", strings.Repeat("_, ", len(uses)-1)+"_", strings.Join(uses, ", "))
		}
		s.WriteString(lineDirective(b.path, last))
		s.WriteString(tail)
		return s.String(), restStart, restEnd
	}
	src, restStart, restEnd := compose(nil, nil)
	auto, uses := analyze(src, restStart, restEnd)
	gf.src, _, _ = compose(auto, uses)
	gf.main = gf.run
	if gf.run && !declaresMain(gf.src) {
		return nil, errors.New("an output block follows it, but it is not a fragment of main")
	}
	return gf, nil
}

// analyze parses a generated file and returns the import paths of the
// known packages it names without importing, and the variables declared by
// the statements between restStart and restEnd at the top level of their
// block. A file that does not parse gets neither: go build reports why.
func analyze(src string, restStart, restEnd int) (auto, uses []string) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "fragment.go", src, 0)
	if err != nil {
		return nil, nil
	}
	imported := map[string]bool{}
	for _, im := range f.Imports {
		p, _ := strconv.Unquote(im.Path.Value)
		name := path.Base(p)
		if im.Name != nil {
			name = im.Name.Name
		}
		imported[name] = true
	}
	for _, id := range f.Unresolved {
		if p, ok := knownImports[id.Name]; ok && !imported[id.Name] && !slices.Contains(auto, p) {
			auto = append(auto, p)
		}
	}
	slices.Sort(auto)
	offset := func(p token.Pos) int { return fset.Position(p).Offset }
	ast.Inspect(f, func(n ast.Node) bool {
		bs, ok := n.(*ast.BlockStmt)
		if !ok || offset(bs.Lbrace) >= restStart {
			return true
		}
		for _, st := range bs.List {
			if o := offset(st.Pos()); o < restStart || o >= restEnd {
				continue
			}
			for _, name := range declared(st) {
				if !slices.Contains(uses, name) {
					uses = append(uses, name)
				}
			}
		}
		return true
	})
	return auto, uses
}

// declared returns the names a statement declares in its block.
func declared(st ast.Stmt) []string {
	var names []string
	add := func(id *ast.Ident) {
		if id.Name != "_" {
			names = append(names, id.Name)
		}
	}
	switch st := st.(type) {
	case *ast.AssignStmt:
		if st.Tok == token.DEFINE {
			for _, e := range st.Lhs {
				if id, ok := e.(*ast.Ident); ok {
					add(id)
				}
			}
		}
	case *ast.DeclStmt:
		if gd, ok := st.Decl.(*ast.GenDecl); ok && gd.Tok == token.VAR {
			for _, sp := range gd.Specs {
				for _, id := range sp.(*ast.ValueSpec).Names {
					add(id)
				}
			}
		}
	}
	return names
}

// packageName returns the package name of a Go source, "" if it does not
// parse.
func packageName(src string) string {
	f, err := parser.ParseFile(token.NewFileSet(), "main.go", src, parser.PackageClauseOnly)
	if err != nil {
		return ""
	}
	return f.Name.Name
}

// declaresMain tells whether a Go source declares func main in package main.
func declaresMain(src string) bool {
	f, err := parser.ParseFile(token.NewFileSet(), "main.go", src, parser.SkipObjectResolution)
	if err != nil {
		return true // go build says what is wrong
	}
	if f.Name.Name != "main" {
		return false
	}
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil && fd.Name.Name == "main" {
			return true
		}
	}
	return false
}
