// Command protogen regenerates the Go code of the cluster's protobuf
// messages without protoc: it compiles the .proto files with
// github.com/bufbuild/protocompile and runs protoc-gen-go's generator
// (google.golang.org/protobuf, the version in go.mod) on the result, with
// paths=source_relative. `make proto` runs it:
//
//	go run ./actors/cluster/internal/protogen -I actors/cluster \
//		-I "$(go list -m -f '{{.Dir}}' github.com/asynkron/protoactor-go)/actor" \
//		-out actors/cluster clusterpb/tokens.proto
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/bufbuild/protocompile"
	gengo "google.golang.org/protobuf/cmd/protoc-gen-go/internal_gengo"
	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/pluginpb"
)

type paths []string

func (p *paths) String() string     { return strings.Join(*p, ",") }
func (p *paths) Set(v string) error { *p = append(*p, v); return nil }

func main() {
	var imports paths
	flag.Var(&imports, "I", "import path (repeatable)")
	out := flag.String("out", ".", "output directory (paths=source_relative)")
	flag.Parse()
	if err := run(imports, *out, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "protogen:", err)
		os.Exit(1)
	}
}

func run(imports []string, out string, files []string) error {
	if len(files) == 0 {
		return fmt.Errorf("no .proto file given")
	}
	c := protocompile.Compiler{
		Resolver:       protocompile.WithStandardImports(&protocompile.SourceResolver{ImportPaths: imports}),
		SourceInfoMode: protocompile.SourceInfoStandard,
	}
	compiled, err := c.Compile(context.Background(), files...)
	if err != nil {
		return fmt.Errorf("compile: %w", err)
	}
	req := &pluginpb.CodeGeneratorRequest{
		FileToGenerate: files,
		Parameter:      proto.String("paths=source_relative"),
	}
	seen := map[string]bool{}
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) { // dependencies first
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		imps := fd.Imports()
		for i := 0; i < imps.Len(); i++ {
			add(imps.Get(i).FileDescriptor)
		}
		req.ProtoFile = append(req.ProtoFile, protodesc.ToFileDescriptorProto(fd))
	}
	for _, f := range compiled {
		add(f)
	}
	gen, err := protogen.Options{}.New(req)
	if err != nil {
		return fmt.Errorf("protogen: %w", err)
	}
	for _, f := range gen.Files {
		if f.Generate {
			gengo.GenerateFile(gen, f)
		}
	}
	resp := gen.Response()
	if resp.Error != nil {
		return fmt.Errorf("generate: %s", resp.GetError())
	}
	for _, f := range resp.File {
		path := filepath.Join(out, f.GetName())
		if err := os.WriteFile(path, []byte(f.GetContent()), 0o644); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		fmt.Println("wrote", path)
	}
	return nil
}
