package readme

import (
	"fmt"
	"strings"
	"testing"
)

// ellipsis in a shown output stands for any text of a line, or, alone on a
// line, for any number of lines.
const ellipsis = "..."

// outputLines splits an output into lines without trailing spaces, leaving
// out the blank lines at its start and end.
func outputLines(s string) []string {
	lines := strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \t")
	}
	for len(lines) > 0 && lines[0] == "" {
		lines = lines[1:]
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// matchOutput tells whether got is the output that want shows.
func matchOutput(want, got string) bool {
	return matchLines(outputLines(want), outputLines(got))
}

func matchLines(want, got []string) bool {
	if len(want) == 0 {
		return len(got) == 0
	}
	if want[0] == ellipsis {
		for i := 0; i <= len(got); i++ {
			if matchLines(want[1:], got[i:]) {
				return true
			}
		}
		return false
	}
	return len(got) > 0 && matchLine(want[0], got[0]) && matchLines(want[1:], got[1:])
}

// matchLine tells whether a line matches a shown line, where each "..."
// stands for any text.
func matchLine(want, got string) bool {
	pieces := strings.Split(want, ellipsis)
	if len(pieces) == 1 {
		return want == got
	}
	first, last := pieces[0], pieces[len(pieces)-1]
	if len(got) < len(first)+len(last) || !strings.HasPrefix(got, first) || !strings.HasSuffix(got, last) {
		return false
	}
	mid := got[len(first) : len(got)-len(last)]
	for _, p := range pieces[1 : len(pieces)-1] {
		i := strings.Index(mid, p)
		if i < 0 {
			return false
		}
		mid = mid[i+len(p):]
	}
	return true
}

// mismatch says where got leaves the output block out, for messages: the
// first shown line that a greedy reading of got does not find, or the first
// line of got past the last shown line.
func mismatch(out *block, got string) string {
	want, lines := outputLines(out.body), outputLines(got)
	lead := len(strings.Split(out.body, "\n")) - len(strings.Split(strings.TrimLeft(out.body, " \t\n"), "\n"))
	j, skip := 0, false
	for i, w := range want {
		if w == ellipsis {
			skip = true
			continue
		}
		found := false
		for ; j < len(lines); j++ {
			if matchLine(w, lines[j]) {
				found = true
				j++
				break
			}
			if !skip {
				break
			}
		}
		if !found {
			return fmt.Sprintf("%s:%d, %q, is not in the output where it should be", out.file, out.fence+1+lead+i, w)
		}
		skip = false
	}
	if j < len(lines) && !skip {
		return fmt.Sprintf("the output goes on past the last line shown (%s:%d) with %q", out.file, out.fence+len(want)+lead, lines[j])
	}
	return "the output differs"
}

// indent prefixes every line of s with a tab, for messages.
func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return "\t(nothing)"
	}
	return "\t" + strings.ReplaceAll(s, "\n", "\n\t")
}

func TestMatchOutput(t *testing.T) {
	for _, c := range []struct {
		want, got string
		match     bool
	}{
		{"a\nb\n", "a\nb", true},
		{"a\nb", "a\nc", false},
		{"a", "a\nb", false},
		{"a\nb", "a", false},
		{"a  \n\n", "\na\n", true},
		{"a\n...\nd", "a\nb\nc\nd", true},
		{"a\n...\nd", "a\nd", true},
		{"a\n...\nd", "a\nb\nc", false},
		{"...", "", true},
		{"listening on 127.0.0.1:...", "listening on 127.0.0.1:7878", true},
		{"listening on 127.0.0.1:...", "listening on ::1:7878", false},
		{"time=... msg=x conn=... hadError=false", "time=12:00 msg=x conn=3 hadError=false", true},
		{"time=... msg=x conn=... hadError=false", "time=12:00 msg=y conn=3 hadError=false", false},
		{"ab...ba", "aba", false},
		{"ab...ba", "abba", true},
		{"a...b...c", "acxc", false},
		{"a...b...c", "axbyc", true},
	} {
		if got := matchOutput(c.want, c.got); got != c.match {
			t.Errorf("matchOutput(%q, %q) = %v, want %v", c.want, c.got, got, c.match)
		}
	}
}

func TestMismatch(t *testing.T) {
	out := &block{file: "R.md", fence: 10, body: "a\n...\nd\ne\n"}
	for _, c := range []struct{ got, want string }{
		{"a\nb\nd\nx\n", `R.md:14, "e", is not in`},
		{"b\n", `R.md:11, "a", is not in`},
		{"a\nd\ne\nf\n", `goes on past the last line shown (R.md:14) with "f"`},
	} {
		if got := mismatch(out, c.got); !strings.Contains(got, c.want) {
			t.Errorf("mismatch for %q = %q, want it to contain %q", c.got, got, c.want)
		}
	}
}
