package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// modulePath is the module whose test/interop holds the Node echo server.
const modulePath = "github.com/tokenserver/tokenserver"

// nodeRef is the Node original that compare measures as a second reference:
// test/interop/echo-server.js on the npm token-server that test/interop pins.
type nodeRef struct {
	node       string // the node binary
	dir        string // test/interop, with node_modules/token-server
	version    string // of node, "v20.1.0"
	pkgVersion string // of the npm token-server, "1.0.10"
}

// findNode looks for node on PATH and for the echo server and its npm package
// in dir, or when dir is empty in test/interop of the module that contains
// the working directory. When something is missing it returns the reason,
// one line that says what to do.
func findNode(ctx context.Context, dir string) (*nodeRef, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, errors.New("node is not on PATH (install Node.js to measure the original token-server)")
	}
	if dir == "" {
		root, err := moduleRoot()
		if err != nil {
			return nil, fmt.Errorf("%v; give --node-dir (the test/interop directory of tokenserver-go)", err)
		}
		dir = filepath.Join(root, "test", "interop")
	}
	if _, err := os.Stat(filepath.Join(dir, "echo-server.js")); err != nil {
		return nil, fmt.Errorf("no echo-server.js in %s (--node-dir is the test/interop directory of tokenserver-go)", dir)
	}
	pkg, err := os.ReadFile(filepath.Join(dir, "node_modules", "token-server", "package.json"))
	if err != nil {
		return nil, fmt.Errorf("the npm package token-server is not installed in %s (run make interop-deps, or npm ci there)",
			filepath.Join(dir, "node_modules"))
	}
	var meta struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal(pkg, &meta); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "node_modules", "token-server", "package.json"), err)
	}
	ref := &nodeRef{node: node, dir: dir, pkgVersion: meta.Version}
	vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(vctx, node, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("node --version: %v", err)
	}
	ref.version = strings.TrimSpace(string(out))
	return ref, nil
}

// moduleRoot is the directory of the go.mod of modulePath that contains the
// working directory.
func moduleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; {
		if isModuleRoot(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("the working directory %s is not inside %s", wd, modulePath)
		}
		dir = parent
	}
}

// isModuleRoot reports whether the go.mod file at path declares modulePath.
func isModuleRoot(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`) == modulePath
		}
	}
	return false
}
