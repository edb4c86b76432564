package readme

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// blocksDir is where the generated packages seem to be, inside the module,
// through go build's -overlay: they share the module's go.mod and go.sum and
// its build cache, and nothing is written into the source tree.
const blocksDir = "test/readme/blocks"

// buildResult is what one go build of several packages gave.
type buildResult struct {
	bin    string            // the directory of the executables, named as their package directory
	errs   map[string]string // go build's output for a package: by directory name for a generated one, else by import path
	other  string            // output that names no package (a go.mod problem...)
	failed bool              // go build exited with an error
}

// modulePath reads the module path from root's go.mod.
func modulePath(root string) (string, error) {
	f, err := os.Open(filepath.Join(root, "go.mod"))
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if p, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(p), `"`), nil
		}
	}
	return "", fmt.Errorf("no module line in %s", filepath.Join(root, "go.mod"))
}

// goBuild builds the generated sources (by package directory name under
// blocksDir) and the packages of extra (patterns relative to root), in root:
// the main packages (those named in mains, and extra) are linked into
// tmp/bin by one go build, the other sources are compiled by another (go
// build -o skips packages that are not main, and go build without -o would
// write a lone main package's executable into root).
func goBuild(ctx context.Context, root, tmp string, sources map[string]string, mains map[string]bool, extra []string) (*buildResult, error) {
	mod, err := modulePath(root)
	if err != nil {
		return nil, err
	}
	res := &buildResult{bin: filepath.Join(tmp, "bin"), errs: map[string]string{}}
	if err := os.MkdirAll(filepath.Join(tmp, "src"), 0o755); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(res.bin, 0o755); err != nil {
		return nil, err
	}
	overlay := map[string]map[string]string{"Replace": {}}
	dirOf := map[string]string{}
	programs, others := extra, []string(nil)
	for dir, src := range sources {
		file := filepath.Join(tmp, "src", dir+".go")
		if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
			return nil, err
		}
		overlay["Replace"][filepath.Join(root, blocksDir, dir, "main.go")] = file
		p := mod + "/" + blocksDir + "/" + dir
		dirOf[p] = dir
		if mains[dir] {
			programs = append(programs, p)
		} else {
			others = append(others, p)
		}
	}
	js, err := json.Marshal(overlay)
	if err != nil {
		return nil, err
	}
	ov := filepath.Join(tmp, "overlay.json")
	if err := os.WriteFile(ov, js, 0o644); err != nil {
		return nil, err
	}
	for _, b := range []struct{ flags, pkgs []string }{
		{[]string{"-o", res.bin + string(filepath.Separator)}, programs},
		{nil, others},
	} {
		if len(b.pkgs) == 0 {
			continue
		}
		args := append(append([]string{"build", "-overlay", ov}, b.flags...), b.pkgs...)
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("go build: %w", ctx.Err())
		}
		if err == nil {
			continue
		}
		res.failed = true
		// go build prints "# import/path" above the errors of each package.
		pkg, attributed := "", false
		for _, line := range strings.SplitAfter(string(out), "\n") {
			if p, ok := strings.CutPrefix(line, "# "); ok {
				pkg = strings.Fields(p)[0]
				if dir, ok := dirOf[pkg]; ok {
					pkg = dir
				}
				continue
			}
			if pkg == "" {
				res.other += line
			} else {
				res.errs[pkg] += line
				attributed = true
			}
		}
		if !attributed && strings.TrimSpace(res.other) == "" {
			res.other = err.Error()
		}
	}
	return res, nil
}
