// Command mutate runs `make mutate`: mutation testing with gremlins
// (github.com/go-gremlins/gremlins, pinned in go.mod as a Go tool), then a
// report of every package's efficacy that leaves out the accepted survivors
// listed in survivors.txt beside it.
//
// Two kinds of target, one gremlins run each, one after the other:
//
//   - a directory mutated whole (-whole: wire, tlsio and supervisor), each
//     mutant tested by the tests of that directory's packages, as gremlins
//     does by default (run here in its integration mode, so that the
//     wrapper can pick among them: see -per-test);
//   - a directory mutated only on the lines changed since a commit (-diff-dir
//     actors, -base: gremlins' --diff), each mutant tested by the tests of
//     the packages -tests lists, the test/ packages that exercise actors
//     over real sockets included (gremlins' --integration, with --coverpkg so
//     that their coverage counts).
//
// gremlins v0.6.0 runs `go test ./...` in integration mode, the whole module
// (the cluster tests with their etcd and node processes, the interop tests
// with Node), and its --coverpkg alone changes only the coverage it gathers,
// not the tests a mutant runs. So this command puts itself first on
// gremlins' PATH under the name "go": run so, it passes every command to the
// real go, except that `go test ... ./...` becomes the -tests packages,
// tested together for the coverage run and one after the other for a
// mutant, stopping at the first that fails (the mutant is killed; the rest
// would only cost time). It also makes the coverage run last at least
// -min-timeout over the coefficient: gremlins times a mutant's tests out
// after the coefficient times that run, which takes a second or two for a
// small package once the build cache is warm, and a loaded machine would
// turn such a timeout into "timed out" mutants that hang nowhere. And the
// tests run with -count=1, so that the test cache answers no coverage run.
//
// A mutant runs only the tests that run its line (-per-test, the default):
// before gremlins starts on a target, every test of its packages (-tests
// for -diff-dir) runs alone with coverage, and the wrapper, which finds the mutated line by comparing
// gremlins' copy of the module with the source, runs `go test -run` with
// the tests that ran it, package by package. A surviving mutant costs the
// few tests that could see it instead of every package's, several times
// less on actors/. A test whose coverage depends on timing may be left out
// of a line's tests: check a survivor with -per-test=false. On wire,
// tlsio and supervisor a run took 18, 20 and 4 minutes this way, against
// 24, 34 and 6 with every test of the package on each mutant.
//
// Go's coverage counts the expressions of a switch's case clauses in no
// block, so gremlins, which looks a mutant's line and column up in the
// coverage profile, took a mutant there (`case n > max:`) for one no test
// runs and never tested it. Every coverage profile this command reads or
// hands to gremlins gets a block for each case clause's expressions,
// counted as the block that holds its switch (caseblocks.go).
//
// Efficacy is gremlins' own: killed mutants over killed and lived ones;
// timed-out and not-viable mutants count in neither. The report gives it as
// gremlins counts it and with the accepted survivors set aside, lists every
// survivor not accepted (as a line ready for survivors.txt once it has a
// reason) and every accepted one that no longer survives, and says how long
// each run took and under what load. The command fails if a package's
// efficacy, accepted survivors aside, is under -min-efficacy.
//
// survivors.txt holds one accepted survivor a line:
//
//	FILE: TYPE: CODE -- REASON
//
// FILE is the path from the module root, TYPE gremlins' mutator (as
// CONDITIONALS_BOUNDARY), CODE the source line without its indentation with
// the mutated token in [[ ]], and REASON why no test should kill it (an
// equivalent mutant, a timing no test should pin). Lines that are empty or
// start with # are comments. The line number is left out so that the list
// survives edits elsewhere in the file; a line that the code holds twice
// with the same mutator accepts both.
package main
