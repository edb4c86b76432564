# tokenserver-go: build, run and test. Every target works on a fresh machine
# with Go, gcc, Node.js and npm; whatever the tests need is installed here.

GO        ?= go
FUZZTIME  ?= 10s
# Longer fuzzing for `make fuzz`.
FUZZLONG  ?= 2m
BENCHTIME ?= 1s
# Duration of `make soak`.
SOAK      ?= 60s
# Fuzz targets as package:Target pairs, run one at a time (go test -fuzz takes one).
FUZZ_TARGETS := ./wire:FuzzDecode ./wire:FuzzRoundTrip ./test/fuzz:FuzzServerConnection
INTEROP_DIR  := test/interop

.PHONY: all run test fmt-check vet unit fuzz-short fuzz bench interop-deps soak

all: test

## run: the main job, the echo example (certificates in memory, loopback).
run:
	$(GO) run ./examples/echo

## test: formatting, vet, every test with the race detector, short fuzz runs.
test: fmt-check vet interop-deps unit fuzz-short

fmt-check:
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	$(GO) vet -tags soak ./test/soak

# The interop tests drive the real npm token-server; install it from the lock file.
interop-deps:
	@if [ -f $(INTEROP_DIR)/package-lock.json ]; then \
		cd $(INTEROP_DIR) && npm ci --no-audit --no-fund --loglevel=error; \
	fi

unit:
	$(GO) test -race -count=1 -timeout 8m ./...

fuzz-short:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$pkg $$name for $(FUZZTIME)"; \
		$(GO) test -run=NONE -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) $$pkg || exit 1; \
	done

## fuzz: longer fuzz runs (FUZZLONG=10m make fuzz).
fuzz:
	@$(MAKE) --no-print-directory fuzz-short FUZZTIME=$(FUZZLONG)

## bench: Go micro-benchmarks with allocation counts, then the end-to-end
## comparison with a plain crypto/tls echo loop (tokencat compare), as ratios.
COMPARE_DURATION ?= 2s
COMPARE_REPS     ?= 3
bench:
	$(GO) test -run=NONE -bench=. -benchmem -benchtime=$(BENCHTIME) ./...
	$(GO) run ./examples/tokencat compare --duration $(COMPARE_DURATION) --reps $(COMPARE_REPS)

## soak: reconnecting clients against a server restarted under load; every
## token must come back or be reported dropped (SOAK=5m make soak).
soak:
	$(GO) test -tags soak -count=1 -timeout 0 -run TestSoak -v ./test/soak -soak.duration=$(SOAK)
