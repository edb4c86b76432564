package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"
)

// runInProcess runs tokencat's command line in this process, with empty
// stdin, and returns what it wrote and its exit code.
func runInProcess(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr strings.Builder
	e := &env{ctx: ctx, stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr}
	code := run(e, args)
	return result{stdout.String(), stderr.String(), code}
}

func TestMainHelpListsEveryCommand(t *testing.T) {
	t.Parallel()
	r := runInProcess(t, "--help")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	if !strings.HasPrefix(r.stdout, "Usage:\n  tokencat ") {
		t.Errorf("help starts %q", firstLine(r.stdout))
	}
	for _, want := range []string{"  certs ", "  serve ", "  send ", "  bench ", "  compare ", "  baseline ", "  completion ", "  help ", "--version", "Exit codes: 0 success, 1 runtime failure, 2 usage error."} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("main help does not contain %q:\n%s", want, r.stdout)
		}
	}
}

func TestServeHelpListsFlagsAndFirstLineContract(t *testing.T) {
	t.Parallel()
	r := runInProcess(t, "serve", "--help")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	if !strings.HasPrefix(r.stdout, "Usage:\n  tokencat serve --listen HOST:PORT ") {
		t.Errorf("help starts %q", firstLine(r.stdout))
	}
	for _, want := range []string{
		`The first line on stdout is "listening on HOST:PORT"`,
		"--listen HOST:PORT", "--ca FILE", "--cert FILE", "--key FILE", "--echo", "--exec CMD",
		"--exec-timeout D", "--max-token-size BYTES", "--handshake-timeout D", "--max-conns N",
		"--write-timeout D", "--keepalive D", "(default 15s)", "-h, --help",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("serve help does not contain %q:\n%s", want, r.stdout)
		}
	}
}

func TestCompletionScripts(t *testing.T) {
	t.Parallel()
	for shell, want := range map[string]string{
		"bash": "complete -o default -F __start_tokencat tokencat",
		"zsh":  "#compdef tokencat",
		"fish": "complete -c tokencat",
	} {
		r := runInProcess(t, "completion", shell)
		if r.code != 0 || r.stderr != "" {
			t.Errorf("completion %s: exit %d, stderr %q", shell, r.code, r.stderr)
			continue
		}
		if !strings.Contains(r.stdout, want) {
			t.Errorf("completion %s: script does not contain %q", shell, want)
		}
	}
}

// The scripts ask tokencat itself ("tokencat __complete ARGS") what fits.
func TestCompletionKnowsCommandsAndFlags(t *testing.T) {
	t.Parallel()
	r := runInProcess(t, "__complete", "se")
	if r.code != 0 || !strings.Contains(r.stdout, "serve\t") || !strings.Contains(r.stdout, "send\t") || strings.Contains(r.stdout, "certs") {
		t.Errorf("completing %q: exit %d, stdout:\n%s", "se", r.code, r.stdout)
	}
	r = runInProcess(t, "__complete", "serve", "--max-")
	if r.code != 0 || !strings.Contains(r.stdout, "--max-conns\t") || !strings.Contains(r.stdout, "--max-token-size\t") {
		t.Errorf("completing %q: exit %d, stdout:\n%s", "serve --max-", r.code, r.stdout)
	}
}

// Completion descriptions are plain text: the backticks that name a flag's
// value in its usage (`HOST:PORT`) are for the help, which still shows the
// name.
func TestCompletionDescriptionsWithoutMarkup(t *testing.T) {
	t.Parallel()
	r := runInProcess(t, "__complete", "send", "--a")
	if r.code != 0 || !strings.Contains(r.stdout, "--addr\tHOST:PORT of the server") {
		t.Errorf("completing %q: exit %d, stdout:\n%s", "send --a", r.code, r.stdout)
	}
	for _, sub := range []string{"certs", "serve", "send", "bench", "compare", "baseline"} {
		for _, req := range []string{"__complete", "__completeNoDesc"} {
			r := runInProcess(t, req, sub, "--")
			if r.code != 0 || !strings.Contains(r.stdout, "--help") || strings.Contains(r.stdout, "`") {
				t.Errorf("%s %s --: exit %d, stdout:\n%s", req, sub, r.code, r.stdout)
			}
		}
	}
	if r := runInProcess(t, "send", "--help"); !strings.Contains(r.stdout, "--addr HOST:PORT") {
		t.Errorf("send help lost the value name of --addr:\n%s", r.stdout)
	}
}

func TestUnknownFlagExits2WithClearError(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--no-such-flag"}, {"serve", "--no-such-flag"}, {"completion", "bash", "--no-such-flag"}} {
		r := runInProcess(t, args...)
		if r.code != 2 {
			t.Errorf("%q: exit %d, want 2", args, r.code)
		}
		lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
		if len(lines) != 2 || !strings.Contains(lines[0], "flag provided but not defined: -no-such-flag") || !strings.HasPrefix(lines[1], "Run 'tokencat ") {
			t.Errorf("%q: stderr %q, want the error and where to find the usage", args, r.stderr)
		}
		if r.stdout != "" {
			t.Errorf("%q: stdout %q, want nothing", args, r.stdout)
		}
	}
}

func TestUnknownHelpTopicExits2(t *testing.T) {
	t.Parallel()
	r := runInProcess(t, "help", "frobnicate")
	if r.code != 2 || !strings.Contains(r.stderr, `unknown help topic "frobnicate"`) {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}

// A version as "go install ...@vX.Y.Z" stamps it, or the development one.
var versionLine = regexp.MustCompile(`^tokencat version v[0-9]+\.[0-9]+\.[0-9]+\S*\n$`)

func TestVersion(t *testing.T) {
	t.Parallel()
	for _, flag := range []string{"--version", "-v"} {
		r := runInProcess(t, flag)
		if r.code != 0 || r.stderr != "" || !versionLine.MatchString(r.stdout) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", flag, r.code, r.stdout, r.stderr)
		}
	}
	r := mustRun(t, 0, 30*time.Second, "", "--version") // the built binary
	if !versionLine.MatchString(r.stdout) {
		t.Errorf("binary --version: stdout %q", r.stdout)
	}
}
