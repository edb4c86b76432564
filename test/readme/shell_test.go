package readme

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// shellTimeout bounds one shell block.
const shellTimeout = 3 * time.Minute

// shellPreamble comes before every shell block. The README's go commands
// that build tokencat use the one the test built ($READMETEST_TOKENCAT); the
// trap says which line failed. bash runs without job control, so the
// commands a block starts in the background stay in its process group.
const shellPreamble = `set -e
go() {
	if [ "$1 $2" = "run ./examples/tokencat" ]; then
		shift 2
		"$READMETEST_TOKENCAT" "$@"
	elif [ "$#" = 4 ] && [ "$1 $2 $4" = "build -o ./examples/tokencat" ]; then
		cp "$READMETEST_TOKENCAT" "$3"
	else
		echo "readme test: a shell block may run go only as 'go run ./examples/tokencat ...' or 'go build -o FILE ./examples/tokencat', not: go $*" >&2
		return 1
	fi
}
trap 'echo "readme test: exit status $? at script line $LINENO" >&2' ERR
`

// loopbackAddr is an address on loopback in a shell block.
var loopbackAddr = regexp.MustCompile(`127\.0\.0\.1:([0-9]+)`)

// failedLine finds the script line that the preamble's trap reported.
var failedLine = regexp.MustCompile(`readme test: exit status ([0-9]+) at script line ([0-9]+)`)

// freePorts gives each port of the README a free port on loopback, the
// same one in every block.
type freePorts struct {
	byREADME map[string]string // README port -> free port
	back     map[string]string // free port -> README port
}

func newFreePorts() *freePorts {
	return &freePorts{byREADME: map[string]string{}, back: map[string]string{}}
}

// substitute replaces every loopback port but 0 of a block by a free one.
func (p *freePorts) substitute(body string) (string, error) {
	var err error
	out := loopbackAddr.ReplaceAllStringFunc(body, func(addr string) string {
		port := loopbackAddr.FindStringSubmatch(addr)[1]
		if port == "0" {
			return addr
		}
		free, ok := p.byREADME[port]
		if !ok {
			var ln net.Listener
			ln, err = net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return addr
			}
			free = strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
			_ = ln.Close()
			p.byREADME[port], p.back[free] = free, port
		}
		return "127.0.0.1:" + free
	})
	return out, err
}

// restore puts the README's ports back into an output.
func (p *freePorts) restore(out string) string {
	return loopbackAddr.ReplaceAllStringFunc(out, func(addr string) string {
		if port, ok := p.back[loopbackAddr.FindStringSubmatch(addr)[1]]; ok {
			return "127.0.0.1:" + port
		}
		return addr
	})
}

// runShell runs a shell block with bash in dir and checks its output, if
// one is shown. tmp holds the script and what the block prints.
func runShell(ctx context.Context, b *block, dir, tmp, tokencat string, ports *freePorts) error {
	body, err := ports.substitute(b.body)
	if err != nil {
		return fmt.Errorf("%s: no free port on loopback: %w", b.where(), err)
	}
	script := filepath.Join(tmp, fmt.Sprintf("block-%d.sh", b.fence))
	if err := os.WriteFile(script, []byte(shellPreamble+body), 0o644); err != nil {
		return err
	}
	stdout, err := os.Create(filepath.Join(tmp, fmt.Sprintf("block-%d.out", b.fence)))
	if err != nil {
		return err
	}
	defer stdout.Close()
	stderr, err := os.Create(filepath.Join(tmp, fmt.Sprintf("block-%d.err", b.fence)))
	if err != nil {
		return err
	}
	defer stderr.Close()

	ctx, cancel := context.WithTimeout(ctx, shellTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "--noprofile", "--norc", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "READMETEST_TOKENCAT="+tokencat)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	ownProcessGroup(cmd)
	runErr := cmd.Run()
	killProcessGroup(cmd)
	outBytes, _ := os.ReadFile(stdout.Name())
	errBytes, _ := os.ReadFile(stderr.Name())
	out := ports.restore(string(outBytes))

	if runErr != nil {
		why := runErr.Error()
		if ctx.Err() != nil {
			why = fmt.Sprintf("did not finish within %v", shellTimeout)
		}
		var exit *exec.ExitError
		if m := failedLine.FindStringSubmatch(string(errBytes)); m != nil && errors.As(runErr, &exit) {
			n, _ := strconv.Atoi(m[2])
			line := b.fence + n - strings.Count(shellPreamble, "\n")
			why = fmt.Sprintf("exit status %s at %s:%d: %s", m[1], b.file, line, strings.TrimSpace(lineOf(b, line)))
		}
		return fmt.Errorf("%s: %s\nstdout:\n%s\nstderr:\n%s", b.where(), why, indent(out), indent(string(errBytes)))
	}
	if b.output != nil && !matchOutput(b.output.body, out) {
		return fmt.Errorf("%s: prints something else than its output block (%s:%d): %s\nwant:\n%s\ngot:\n%s\nstderr:\n%s",
			b.where(), b.file, b.output.fence, mismatch(b.output, out), indent(b.output.body), indent(out), indent(string(errBytes)))
	}
	return nil
}

// lineOf returns line n of the README, inside block b.
func lineOf(b *block, n int) string {
	lines := strings.Split(b.body, "\n")
	if i := n - b.fence - 1; i >= 0 && i < len(lines) {
		return lines[i]
	}
	return ""
}
