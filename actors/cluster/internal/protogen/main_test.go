package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The committed tokens.pb.go is what `make proto` makes from tokens.proto.
func TestGeneratedCodeIsCurrent(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/asynkron/protoactor-go").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	protoactor := strings.TrimSpace(string(out))
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "clusterpb"), 0o755); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join("..", "..")
	if err := run([]string{src, filepath.Join(protoactor, "actor")}, dir, []string{"clusterpb/tokens.proto"}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "clusterpb", "tokens.pb.go"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(src, "clusterpb", "tokens.pb.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("actors/cluster/clusterpb/tokens.pb.go is not what tokens.proto generates: run make proto")
	}
}
