# tokenserver-go: build, run and test. Every target works on a fresh machine
# with Go, gcc, Node.js and npm; whatever the tests need is installed here.

GO        ?= go
# Longer fuzzing for `make fuzz` (a time budget; run by hand).
FUZZLONG  ?= 2m
BENCHTIME ?= 1s
# Duration of `make soak`.
SOAK      ?= 60s
# Fuzz targets as package:Target:executions, run one at a time (go test -fuzz
# takes one). `make test` bounds each by a count of executions, about 10 s of
# work on a 2-core machine, never by time: a time budget races the fuzzing
# coordinator's deadline on a loaded machine (go.dev/issue/75804) and fails
# with "context deadline exceeded" for no fault of the code. Minimizing a new
# input is bounded by count too.
# FuzzEncryptedKey derives keys (PBKDF2, scrypt) for many inputs, so its rate
# swings between about 4,000 and 11,000 executions/s and falls as its cached
# corpus grows: 100000 took 11 s from an empty corpus, 60000 took 9.5 s with
# 150 entries cached.
# The token/2 targets (wire/token2_test.go) take about 5 s each.
FUZZ_TARGETS := ./wire:FuzzDecode:100000 ./wire:FuzzRoundTrip:500000 ./test/fuzz:FuzzServerConnection:3000 \
                ./tlsio:FuzzEncryptedKey:60000 \
                ./wire:FuzzToken2Decode:60000 ./wire:FuzzToken2RoundTrip:100000 ./wire:FuzzToken2Handshake:60000
FUZZMINIMIZE := 1000x
INTEROP_DIR  := test/interop

.PHONY: all run test fmt-check vet lint unit fuzz-short fuzz bench interop-deps soak proto mutate

all: test

## run: the main job, the echo example (certificates in memory, loopback).
run:
	$(GO) run ./examples/echo

## test: formatting, vet, staticcheck, every test with the race detector, short fuzz runs.
test: fmt-check vet lint interop-deps unit fuzz-short

fmt-check:
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	$(GO) vet -tags soak ./test/soak

# staticcheck is pinned as a tool in go.mod (go get -tool).
lint:
	$(GO) tool staticcheck ./...
	$(GO) tool staticcheck -tags soak ./test/soak

## proto: regenerate the Go code of the cluster's protobuf messages (committed,
## so building needs no generator): protocompile and protoc-gen-go's
## generator, both pinned in go.mod, no protoc needed.
PROTOACTOR_DIR = $$($(GO) list -m -f '{{.Dir}}' github.com/asynkron/protoactor-go)
proto:
	$(GO) run ./actors/cluster/internal/protogen -I actors/cluster -I "$(PROTOACTOR_DIR)/actor" \
		-out actors/cluster clusterpb/tokens.proto

# The interop tests drive the real npm token-server; install it from the lock file.
interop-deps:
	@if [ -f $(INTEROP_DIR)/package-lock.json ]; then \
		cd $(INTEROP_DIR) && npm ci --no-audit --no-fund --loglevel=error; \
	fi

unit:
	$(GO) test -race -count=1 -timeout 8m ./...

fuzz-short:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; rest=$${t#*:}; name=$${rest%%:*}; count=$${rest##*:}; \
		echo "fuzz $$pkg $$name for $${count} executions"; \
		$(GO) test -run=NONE -fuzz="^$$name\$$" -fuzztime=$${count}x \
			-fuzzminimizetime=$(FUZZMINIMIZE) $$pkg || exit 1; \
	done

## fuzz: longer fuzz runs with a time budget (FUZZLONG=10m make fuzz).
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; rest=$${t#*:}; name=$${rest%%:*}; \
		echo "fuzz $$pkg $$name for $(FUZZLONG)"; \
		$(GO) test -run=NONE -fuzz="^$$name\$$" -fuzztime=$(FUZZLONG) $$pkg || exit 1; \
	done

## bench: Go micro-benchmarks with allocation counts, then `make compare`,
## then `make cluster-bench`.
bench:
	$(GO) test -run=NONE -bench=. -benchmem -benchtime=$(BENCHTIME) ./...
	@$(MAKE) --no-print-directory compare
	@$(MAKE) --no-print-directory cluster-bench

## compare: the end-to-end comparison (tokencat compare), as ratios:
## tokenserver against a plain crypto/tls echo loop and against the Node
## original (the npm token-server that test/interop pins, installed here;
## skipped with one line without Node), each server and the load generator
## in a process of its own, the servers taking turns. tokencat is built once,
## into a temporary directory. For example
## COMPARE_DURATION=5s COMPARE_REPS=5 COMPARE_FLAGS='--loads rt-64c --cpuprofile prof' make compare
COMPARE_DURATION ?= 2s
COMPARE_REPS     ?= 3
COMPARE_FLAGS    ?=
.PHONY: compare
compare:
	@$(MAKE) --no-print-directory interop-deps || \
		echo "compare: npm ci in $(INTEROP_DIR) failed; the Node column may be skipped"
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	echo "$(GO) build -o $$tmp/tokencat ./examples/tokencat" && \
	$(GO) build -o "$$tmp/tokencat" ./examples/tokencat && \
	echo "tokencat compare --duration $(COMPARE_DURATION) --reps $(COMPARE_REPS) $(COMPARE_FLAGS)" && \
	"$$tmp/tokencat" compare --duration $(COMPARE_DURATION) --reps $(COMPARE_REPS) $(COMPARE_FLAGS)

## cluster-bench: token round trips through a remote grain (a front and a
## handler node, examples/cluster, as processes on loopback) against
## Proto.Actor's own request/reply between the same two processes, 1 and 64
## connections, in the same run, as ratios (test/cluster, -cluster.bench);
## and a plain crypto/tls echo (tokencat baseline, a third process) with the
## same load, for the bound that the TLS legs alone set on this machine.
.PHONY: cluster-bench
cluster-bench:
	$(GO) test -count=1 -run TestClusterBench -v ./test/cluster -cluster.bench \
		-cluster.bench.duration $(COMPARE_DURATION) -cluster.bench.reps $(COMPARE_REPS)

## soak: reconnecting clients against a server restarted under load; every
## token must come back or be reported dropped (SOAK=5m make soak).
soak:
	$(GO) test -tags soak -count=1 -timeout 0 -run TestSoak -v ./test/soak -soak.duration=$(SOAK)

## mutate: mutation testing with gremlins (pinned in go.mod as a tool; not
## part of `make test`: it takes hours on 2 cores; run it by hand and before
## a release): wire/, tlsio/ and supervisor/ whole, each mutant tested by
## its own packages' tests, and actors/ on the lines changed since
## MUTATE_BASE (the last release tag, or this round's first commit while
## there is none), each of those mutants tested by the MUTATE_TESTS
## packages, the first that fails killing it. A mutant runs only the tests
## that run its line, mapped first (MUTATE_FLAGS=-per-test=false runs
## every test of those packages on each mutant). The report, with
## every package's efficacy, goes to stdout and $(MUTATE_OUT)/report.txt;
## the survivors accepted with a reason in test/mutate/survivors.txt are not
## reported again. For example
## MUTATE_ONLY=wire MUTATE_WORKERS=2 make mutate
## MUTATE_ONLY=actors MUTATE_BASE=main make mutate
## MUTATE_BASE= MUTATE_FLAGS="-whole actors/internal/framepool,actors/internal/outbox" make mutate
##                                       (those packages whole, against their own tests)
## MUTATE_ONLY=actors MUTATE_OUT=build/mutate-conn MUTATE_FLAGS="-diff-files ^actors/conn_" make mutate
##                                       (a long actors/ run split in parts, each with its own MUTATE_OUT;
##                                        a $ in the pattern is written $$ for make)
## MUTATE_FLAGS=-dry-run make mutate     (find and cover the mutants, test none)
## MUTATE_FLAGS=-report-only make mutate (the report again, from the last results)
MUTATE_BASE    ?= $(shell git describe --tags --abbrev=0 2>/dev/null || echo bb8cb91)
MUTATE_TESTS   ?= ./actors/... ./test/conformance ./test/delivery ./test/hardening ./test/chaos ./test/flowcontrol ./test/observability
MUTATE_ONLY    ?=
MUTATE_WORKERS ?= 1
# A mutant's tests time out after this many times the coverage run, and never
# before MUTATE_MIN_TIMEOUT: generous, so that a loaded machine does not turn
# slow tests into "timed out".
MUTATE_TIMEOUT ?= 8
MUTATE_MIN_TIMEOUT ?= 1m
MUTATE_OUT     ?= build/mutate
MUTATE_FLAGS   ?=
mutate:
	$(GO) run ./test/mutate -go "$(GO)" -base "$(MUTATE_BASE)" -tests "$(MUTATE_TESTS)" -only "$(MUTATE_ONLY)" \
		-workers $(MUTATE_WORKERS) -timeout-coefficient $(MUTATE_TIMEOUT) \
		-min-timeout $(MUTATE_MIN_TIMEOUT) -out "$(MUTATE_OUT)" $(MUTATE_FLAGS)
