package main

import (
	"encoding/json"
	"fmt"
	"go/scanner"
	"go/token"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// gremlinsOutput is the part of gremlins' JSON output (its -o file) read here.
type gremlinsOutput struct {
	Files []gremlinsFile `json:"files"`
}

// gremlinsFile is one file's mutants in gremlinsOutput.
type gremlinsFile struct {
	Name      string             `json:"file_name"`
	Mutations []gremlinsMutation `json:"mutations"`
}

// gremlinsMutation is one mutant in gremlinsOutput.
type gremlinsMutation struct {
	Type   string `json:"type"`
	Status string `json:"status"`
	Line   int    `json:"line"`
	Column int    `json:"column"`
}

// logLine is a mutant's line in gremlins' log: "      KILLED
// CONDITIONALS_NEGATION at actors/conn_actor.go:103:14".
var logLine = regexp.MustCompile(`^\s*(KILLED|LIVED|TIMED OUT|NOT VIABLE|NOT COVERED|SKIPPED|RUNNABLE) ([A-Z_]+) at (\S+):(\d+):(\d+)\s*$`)

// resultsFromLog rebuilds gremlins' output from its log, for a run that
// was interrupted: gremlins then writes no output, but it logs every
// mutant it tested as it goes. The mutants it logs once it is shutting
// down are left out: their tests were cut short by the interrupt, which
// gremlins reports as a result (a LIVED or KILLED that means nothing).
func resultsFromLog(log string) gremlinsOutput {
	var out gremlinsOutput
	index := map[string]int{}
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "Shutting down gracefully") {
			break
		}
		m := logLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		ln, _ := strconv.Atoi(m[4])
		col, _ := strconv.Atoi(m[5])
		i, ok := index[m[3]]
		if !ok {
			i = len(out.Files)
			index[m[3]] = i
			out.Files = append(out.Files, gremlinsFile{Name: m[3]})
		}
		out.Files[i].Mutations = append(out.Files[i].Mutations, gremlinsMutation{Type: m[2], Status: m[1], Line: ln, Column: col})
	}
	return out
}

// The statuses of gremlins' output.
const (
	statusKilled     = "KILLED"
	statusLived      = "LIVED"
	statusTimedOut   = "TIMED OUT"
	statusNotViable  = "NOT VIABLE"
	statusNotCovered = "NOT COVERED"
	statusSkipped    = "SKIPPED"
	statusRunnable   = "RUNNABLE" // covered, in a dry run
)

// mutant is one mutant gremlins tested (or left untested).
type mutant struct {
	File         string // from the module root
	Line, Column int
	Type, Status string
	Code         string // the line, the mutated token in [[ ]]
}

// Key is how survivors.txt names the mutant.
func (m mutant) Key() string { return m.File + ": " + m.Type + ": " + m.Code }

// Where is the mutant's position, for people.
func (m mutant) Where() string { return fmt.Sprintf("%s:%d:%d", m.File, m.Line, m.Column) }

// readResults reads gremlins' output for a run in dir ("." for the module
// root), whose file names are relative to dir, and the source lines of its
// mutants.
func readResults(file, dir string) ([]mutant, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var out gremlinsOutput
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var ms []mutant
	for _, f := range out.Files {
		name := path.Join(dir, f.Name)
		src, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		lines := strings.Split(string(src), "\n")
		for _, mu := range f.Mutations {
			m := mutant{File: name, Line: mu.Line, Column: mu.Column, Type: mu.Type, Status: mu.Status}
			if mu.Line < 1 || mu.Line > len(lines) {
				return nil, fmt.Errorf("%s: no line %d (changed since the run?)", m.Where(), mu.Line)
			}
			if m.Code, err = markToken(lines[mu.Line-1], mu.Column); err != nil {
				return nil, fmt.Errorf("%s: %w", m.Where(), err)
			}
			ms = append(ms, m)
		}
	}
	return ms, nil
}

// markToken returns line without its indentation, with the Go token that
// starts at column (1-based, in bytes) in [[ ]].
func markToken(line string, column int) (string, error) {
	if column < 1 || column > len(line) {
		return "", fmt.Errorf("no column %d in %q", column, line)
	}
	rest := []byte(line[column-1:])
	var s scanner.Scanner
	s.Init(token.NewFileSet().AddFile("", -1, len(rest)), rest, nil, 0)
	_, tok, lit := s.Scan()
	text := lit
	if text == "" {
		text = tok.String()
	}
	if !strings.HasPrefix(string(rest), text) {
		return "", fmt.Errorf("no token at column %d of %q", column, line)
	}
	marked := line[:column-1] + "[[" + text + "]]" + line[column-1+len(text):]
	return strings.TrimLeft(marked, " \t"), nil
}
