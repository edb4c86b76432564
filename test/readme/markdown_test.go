package readme

import (
	"fmt"
	"strings"
)

// markerPrefix starts the HTML comment that marks a block.
const markerPrefix = "<!-- readme:"

// block is a fenced code block of the README.
type block struct {
	file    string // the README's name in messages
	path    string // the README's absolute path, for //line directives
	lang    string // the fence's info string: "go", "sh", "" ...
	fence   int    // line of the opening fence, from 1
	body    string // the lines between the fences, each ending in a newline
	marker  string // the text of the marker above the fence, "" without one
	section string // the nearest "## " heading above it
	output  *block // the block marked as its output, if any
}

// firstLine is the block's first non-blank line, for messages.
func (b *block) firstLine() string {
	for _, l := range strings.Split(b.body, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	return ""
}

// where names the block in messages: its fence's line and its first line.
func (b *block) where() string {
	lang := b.lang
	if lang == "" {
		lang = "plain"
	}
	return fmt.Sprintf("%s:%d: %s block %q", b.file, b.fence, lang, b.firstLine())
}

// isShell tells whether the block is a shell block.
func (b *block) isShell() bool {
	switch b.lang {
	case "sh", "bash", "shell", "console":
		return true
	}
	return false
}

// parseMarkdown returns the fenced code blocks of a Markdown text, with the
// marker of each and each output block tied to the block before it. Output
// blocks are not in the list. A marker that is not right above a fence, and
// an unclosed fence, are errors.
func parseMarkdown(path, file, text string) ([]*block, []error) {
	var (
		blocks  []*block
		errs    []error
		section string
		cur     *block
		body    strings.Builder
		last    *block // the last block that is not an output block
	)
	lines := strings.Split(text, "\n")
	for i, line := range lines {
		n := i + 1
		if cur != nil {
			if strings.TrimSpace(line) == "```" {
				cur.body = body.String()
				body.Reset()
				if cur.marker == "output" {
					switch {
					case last == nil:
						errs = append(errs, fmt.Errorf("%s: an output block with no block above it", cur.where()))
					case last.output != nil:
						errs = append(errs, fmt.Errorf("%s: a second output block for %s", cur.where(), last.where()))
					default:
						last.output = cur
					}
				} else {
					blocks = append(blocks, cur)
					last = cur
				}
				cur = nil
				continue
			}
			body.WriteString(line)
			body.WriteByte('\n')
			continue
		}
		switch {
		case strings.HasPrefix(line, "## "):
			section = strings.TrimSpace(strings.TrimPrefix(line, "## "))
		case strings.HasPrefix(line, "```"):
			cur = &block{file: file, path: path, lang: strings.TrimSpace(strings.TrimPrefix(line, "```")), fence: n, section: section}
			if i > 0 && strings.HasPrefix(strings.TrimSpace(lines[i-1]), markerPrefix) {
				m := strings.TrimSpace(lines[i-1])
				if !strings.HasSuffix(m, "-->") {
					errs = append(errs, fmt.Errorf("%s:%d: a readme marker must be one line ending in -->", file, n-1))
				}
				m = strings.TrimSuffix(strings.TrimPrefix(m, markerPrefix), "-->")
				cur.marker = strings.TrimSpace(m)
			}
		case strings.HasPrefix(strings.TrimSpace(line), markerPrefix):
			if i+1 >= len(lines) || !strings.HasPrefix(lines[i+1], "```") {
				errs = append(errs, fmt.Errorf("%s:%d: a readme marker must be on the line right above a fence: %s", file, n, strings.TrimSpace(line)))
			}
		}
	}
	if cur != nil {
		errs = append(errs, fmt.Errorf("%s: the fence is never closed", cur.where()))
	}
	return blocks, errs
}
