// Package readme tests the code of the README: every Go block compiles, the
// blocks that show their output print it, and the shell blocks marked to run
// (the command line walkthrough) run on loopback and print what is shown.
//
// How the README marks its blocks (an HTML comment on the line right above a
// fence, invisible once rendered):
//
//   - A ```go block that starts with a package clause is a complete program.
//     Every other ```go block is marked as a fragment:
//     <!-- readme: fragment of main --> (the body of func main),
//     <!-- readme: fragment of a file --> (top-level declarations),
//     <!-- readme: fragment of func(server *actors.Server) --> (the body of a
//     function with that signature: its parameters are what the block is
//     given), or <!-- readme: fragment of TEMPLATE -->, Go source in which
//     the block replaces "..." (a template that starts with "func(" is a
//     function named _). The test adds the package clause and imports
//     the packages a fragment names (see knownImports); an import declaration
//     at the start of a fragment is kept. The variables a fragment declares
//     at its top level need not be used. A Go block that cannot compile in
//     this module (it needs a module that go.mod does not require) is marked
//     <!-- readme: not compiled: REASON -->; the test lists those in its log.
//   - <!-- readme: output --> above a plain ``` block: what the block before
//     it prints on stdout. That block is run (a Go block must then be a
//     program or a fragment of main) and its stdout must match, trailing
//     spaces aside; "..." stands for any text within a line, and a line of
//     "..." alone for any number of lines.
//   - <!-- readme: run --> above a ```sh block: the test runs it with bash -e,
//     in a scratch directory shared by the run blocks in README order, with
//     tokencat built once ("go run ./examples/tokencat" and "go build -o X
//     ./examples/tokencat" are answered by a shell function that uses it) and
//     every 127.0.0.1:PORT of the block replaced by a free port (and put back
//     in its output). Every shell block of the "Command line" section is
//     marked run, or "not run: REASON".
//
// The Go blocks and tokencat are built by two go build calls that share the
// module's go.mod and build cache: the generated packages appear under
// test/readme/blocks through go build's -overlay, and nothing is written to
// the source tree. Compile errors point at README lines (the generated files
// carry //line directives), and every failure names the block by its line
// and first line. The test runs go build and the blocks' programs: its
// result depends on packages it does not import, so run it with -count=1
// (make test does). The package has no code outside its tests.
package readme
