package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
)

// accepted is one line of survivors.txt.
type accepted struct {
	Key    string // FILE: TYPE: CODE
	Reason string
	Line   int // in survivors.txt
}

// survivorList is survivors.txt, by key.
type survivorList map[string]accepted

// readSurvivors reads the list of accepted survivors (see the package doc).
func readSurvivors(file string) (survivorList, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseSurvivors(f, file)
}

// parseSurvivors parses the lines of a survivors list read from r, named
// name in errors.
func parseSurvivors(r io.Reader, name string) (survivorList, error) {
	list := survivorList{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, reason, ok := strings.Cut(line, " -- ")
		fields := strings.SplitN(key, ": ", 3)
		switch {
		case !ok || strings.TrimSpace(reason) == "":
			return nil, fmt.Errorf("%s:%d: no reason (FILE: TYPE: CODE -- REASON)", name, n)
		case len(fields) != 3 || fields[0] == "" || fields[1] == "" || !strings.Contains(fields[2], "[[") || !strings.Contains(fields[2], "]]"):
			return nil, fmt.Errorf("%s:%d: not FILE: TYPE: CODE with the mutated token in [[ ]]", name, n)
		}
		if prev, dup := list[key]; dup {
			return nil, fmt.Errorf("%s:%d: the same mutant as line %d", name, n, prev.Line)
		}
		list[key] = accepted{Key: key, Reason: strings.TrimSpace(reason), Line: n}
	}
	return list, sc.Err()
}

// in returns the entries for files under dir.
func (l survivorList) in(dir string) []accepted {
	var out []accepted
	for _, a := range l {
		if dir == "." || strings.HasPrefix(a.Key, dir+"/") {
			out = append(out, a)
		}
	}
	return out
}
