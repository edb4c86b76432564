package main

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

func TestUsageErrorsExit2(t *testing.T) {
	t.Parallel()
	dir := certDir(t)
	srv := tlsArgs(dir, "server")
	cli := tlsArgs(dir, "client")
	cases := []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"no command", nil, "missing command"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unknown flag", []string{"certs", "--frob", t.TempDir()}, "flag provided but not defined: -frob"},
		{"certs without DIR", []string{"certs"}, "want exactly one DIR"},
		{"certs with two DIRs", []string{"certs", "a", "b"}, "want exactly one DIR"},
		{"serve without --listen", append([]string{"serve"}, srv...), "missing required flag --listen"},
		{"serve without --key", []string{"serve", "--listen", "127.0.0.1:0", "--ca", "x", "--cert", "y"}, "missing required flag --key"},
		{"serve --echo and --exec", append([]string{"serve", "--listen", "127.0.0.1:0", "--echo", "--exec", "cat"}, srv...), "cannot be used together"},
		{"serve bad listen", append([]string{"serve", "--listen", "nowhere"}, srv...), "want HOST:PORT"},
		{"serve bad metrics", append([]string{"serve", "--listen", "127.0.0.1:0", "--metrics", "nowhere"}, srv...), `--metrics "nowhere": want HOST:PORT`},
		{"serve --pprof without --metrics", append([]string{"serve", "--listen", "127.0.0.1:0", "--pprof"}, srv...), "--pprof needs --metrics"},
		{"serve bad duration", append([]string{"serve", "--listen", "127.0.0.1:0", "--write-timeout", "soon"}, srv...), "invalid value"},
		{"send without --addr", append([]string{"send"}, cli...), "missing required flag --addr"},
		{"send without --ca", []string{"send", "--addr", "127.0.0.1:1", "--cert", "x", "--key", "y"}, "missing required flag --ca"},
		{"bench without target", []string{"bench"}, "exactly one of --addr, --self and --baseline"},
		{"bench two targets", []string{"bench", "--self", "--baseline"}, "exactly one of --addr, --self and --baseline"},
		{"bench --addr without certs", []string{"bench", "--addr", "127.0.0.1:1"}, "missing required flag --ca"},
		{"bench bad mode", []string{"bench", "--self", "--mode", "sideways"}, "want roundtrip or pipeline"},
		{"bench bad conns", []string{"bench", "--self", "--conns", "0"}, "--conns must be positive"},
		{"bench positional", []string{"bench", "--self", "extra"}, `unexpected argument "extra"`},
	}
	for _, c := range cases {
		r := tokencat(t, 30*time.Second, "", c.args...)
		if r.code != 2 {
			t.Errorf("%s: exit %d, want 2\nstderr: %s", c.name, r.code, r.stderr)
			continue
		}
		if !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s: stderr %q does not contain %q", c.name, r.stderr, c.want)
		}
	}
}

func TestHelpOnEverySubcommand(t *testing.T) {
	t.Parallel()
	r := mustRun(t, 0, 30*time.Second, "", "--help")
	for _, name := range []string{"certs", "serve", "send", "bench", "compare"} {
		if !strings.Contains(r.stdout, "  "+name+" ") {
			t.Errorf("main help does not list %s:\n%s", name, r.stdout)
		}
	}
	for _, name := range []string{"certs", "serve", "send", "bench", "compare"} {
		for _, form := range [][]string{{name, "--help"}, {name, "-h"}, {"help", name}} {
			r := mustRun(t, 0, 30*time.Second, "", form...)
			if !strings.HasPrefix(r.stdout, "Usage:\n  tokencat "+name+" ") {
				t.Errorf("%v: help starts %q", form, firstLine(r.stdout))
			}
			if !strings.Contains(r.stdout, "\nFlags:\n") || !strings.Contains(r.stdout, "-h, --help") {
				t.Errorf("%v: help has no flag list:\n%s", form, r.stdout)
			}
			if r.stderr != "" {
				t.Errorf("%v: stderr %q", form, r.stderr)
			}
		}
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func TestCertsWritesFilesWithModes(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "new", "certs")
	r := mustRun(t, 0, 30*time.Second, "", "certs", dir, "--host", "tokens.example", "--host", "10.1.2.3")
	for _, name := range certFiles {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		want := os.FileMode(0o644)
		if strings.HasSuffix(name, ".key") {
			want = 0o600
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", name, st.Mode().Perm(), want)
		}
		if !strings.Contains(r.stdout, filepath.Join(dir, name)) {
			t.Errorf("stdout does not name %s:\n%s", name, r.stdout)
		}
	}
}

func TestCertsRefusesToOverwriteWithoutForce(t *testing.T) {
	t.Parallel()
	dir := certDir(t)
	before, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	r := mustRun(t, 1, 30*time.Second, "", "certs", dir)
	if !strings.Contains(r.stderr, "already exists") || !strings.Contains(r.stderr, "--force") {
		t.Errorf("stderr does not explain the refusal: %q", r.stderr)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if string(before) != string(after) {
		t.Fatal("ca.crt changed without --force")
	}
	mustRun(t, 0, 30*time.Second, "", "certs", "--force", dir) // flag before DIR
	after, _ = os.ReadFile(filepath.Join(dir, "ca.crt"))
	if string(before) == string(after) {
		t.Fatal("ca.crt not replaced with --force")
	}
}

func TestFlagsAfterArgumentsAndDoubleDash(t *testing.T) {
	t.Parallel()
	e := &env{ctx: context.Background(), stdin: strings.NewReader(""), stdout: &strings.Builder{}, stderr: &strings.Builder{}}
	root := newRootCommand(e)
	var pos []string
	x := &cobra.Command{Use: "x", RunE: func(_ *cobra.Command, args []string) error {
		pos = args
		return nil
	}}
	force := x.Flags().Bool("force", false, "")
	hosts := x.Flags().StringArray("host", nil, "")
	root.AddCommand(x)
	if code := execute(e, root, []string{"x", "a", "--force", "b", "--host", "h1", "--", "--host", "-c"}); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, e.stderr)
	}
	if want := []string{"a", "b", "--host", "-c"}; !reflect.DeepEqual(pos, want) {
		t.Errorf("positional %q, want %q", pos, want)
	}
	if !*force || !reflect.DeepEqual(*hosts, []string{"h1"}) {
		t.Errorf("force %v hosts %q", *force, *hosts)
	}
}
