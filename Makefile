# holdfast — developer entry points. `make test` is what CI runs.
SHELL := /bin/bash
GO    ?= go

.PHONY: test test-go test-js test-examples example-package fuzz-short fuzz infra-check bench soak npm-deps fmt-check test-ui ui-screenshot
# test: everything CI runs — the npm packages installed if missing (as make start does), gofmt, vet, the whole
# suite with -race (the emulator runs in-process, Azurite is started by the tests from node_modules), the
# JavaScript SDK conformance subset (test-js), a short bounded run of every fuzz target, the Bicep checks, the
# operator page in headless chromium (test-ui) and the example modules (test-examples: `go test ./...` here does
# not descend into a nested module). Works first on a fresh clone.
test: npm-deps fmt-check infra-check test-go test-js test-examples fuzz-short test-ui

# npm-deps: npm ci when node_modules lacks a package of package-lock.json (or has another version).
npm-deps:
	@./scripts/ensure-npm.sh

# fmt-check: gofmt -l must print nothing (tracked Go files; every Go file outside node_modules in a tarball).
fmt-check:
	@files=$$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './node_modules/*'); \
	out=$$(gofmt -l $$files); \
	if [ -n "$$out" ]; then echo "gofmt -l: these files need gofmt -w:"; echo "$$out"; exit 1; fi

# test-go runs every Go package but ./jstest, which test-js runs.
test-go:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m $$($(GO) list ./... | grep -v '/jstest$$')

# test-js: the JavaScript SDK (@azure/service-bus, node's test runner) against an emulator the Go
# driver starts in-process; needs `npm ci`.
test-js:
	$(GO) test -count=1 -v -timeout 10m -run '^TestJavaScriptSDKConformance$$' ./jstest/

# test-examples: vet and test each example module on its own (examples/custom-processor: holdfast.Main with
# its own processor, tested through holdfasttest), and build its deployment zip, which the packager checks
# (executable linux/amd64 handler). The e2e package also builds it and runs it under the dev host.
EXAMPLES := examples/custom-processor
test-examples: npm-deps
	@set -e; for d in $(EXAMPLES); do $(MAKE) -C $$d test package GO=$(GO); done

# example-package: the deployable zip of the custom-processor example (examples/custom-processor/bin/).
example-package:
	$(MAKE) -C examples/custom-processor package GO=$(GO)

# test-ui: the operator page driven in Debian's chromium (/usr/bin/chromium, or HOLDFAST_CHROMIUM) against
# the dev-host stack. ui-screenshot runs it and saves the last screen as docs/operator-page.png.
test-ui:
	$(GO) test -race -count=1 -tags browser -run '^TestOperatorPage' ./e2e/

ui-screenshot:
	HOLDFAST_SCREENSHOT=$(CURDIR)/docs/operator-page.png $(GO) test -count=1 -tags browser -run '^TestOperatorPage' ./e2e/

# Every fuzz target as package:Target. fuzz-short runs each for FUZZTIME (make test); `make fuzz` longer.
FUZZ_TARGETS := \
	./emulator/amqp:FuzzDecodeValue \
	./emulator/amqp:FuzzParseFrame \
	./emulator/amqp:FuzzFrameReader \
	./emulator/broker:FuzzParseConfig \
	./internal/ledger:FuzzEncodeKey \
	./internal/invoke:FuzzDecodeTimer \
	./internal/drain:FuzzDecodeRequest \
	./emulator/admin:FuzzAdminJSON \
	./emulator/atom:FuzzATOM \
	./infra/infratest:FuzzParseString
FUZZTIME ?= 10s
# FUZZMINIMIZE bounds the minimization of every new interesting input. With Go's default (60 s) a short run
# spends its time minimizing the first large input it finds (FuzzParseConfig: 8,500 executions in 10 s, then
# none), so fuzz-short turns it off; a failing input is still saved under testdata, unminimized. `make fuzz`
# minimizes. fuzz-short ends with each target's execution count. A run that fails only with "context deadline
# exceeded" and writes no failing input is Go 1.26's coordinator race at the end of -fuzztime (go.dev/issue/75804):
# reported, not fatal.
FUZZMINIMIZE ?= 0

fuzz-short:
	@set -eo pipefail; log=$$(mktemp); sum=""; \
	for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; name=$${t##*:}; \
	  echo "fuzz $$name ($$pkg) for $(FUZZTIME)"; \
	  if ! $(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINIMIZE) $$pkg | tee $$log; then \
	    if grep -qx '    context deadline exceeded' $$log && ! grep -q 'Failing input written to' $$log; then \
	      echo "fuzz $$name: Go 1.26's end-of-fuzztime race (go.dev/issue/75804, fixed in Go 1.27), no failing input"; \
	    else rm -f $$log; exit 1; fi; \
	  fi; \
	  sum="$$sum$$(printf '%-18s %s' $$name "$$(sed -nE 's/.*execs: ([0-9]+) .*new interesting: ([0-9]+).*/\1 executions, \2 new inputs/p' $$log | tail -1)")\n"; \
	done; rm -f $$log; printf "fuzz-short executions in $(FUZZTIME):\n$$sum"

fuzz:
	$(MAKE) fuzz-short FUZZTIME=2m FUZZMINIMIZE=60s

infra-check: npm-deps
	./scripts/infra-check.sh

# --- local run and packaging -------------------------------------------------------------------
# The Functions host finds functions only at the app root, so dist/ is staged from host.json, the
# function folders, local.settings.json (func start --script-root dist reads it there) and the handler binary.
DIST        ?= dist
PKGDIR      ?= bin/package
PACKAGE_ZIP ?= bin/holdfast.zip
DEMO_ARGS   ?=

.PHONY: build dist start demo package deploy deploy-consumption deploy-job

dist:
	rm -rf $(DIST)
	mkdir -p $(DIST)
	cp host.json local.settings.json $(DIST)/
	cp -R functions/. $(DIST)/

build: dist
	CGO_ENABLED=0 $(GO) build -trimpath -o $(DIST)/handler ./handler

start:
	./scripts/start.sh

demo:
	$(GO) run ./cmd/demosend $(DEMO_ARGS)

# package: bin/package/ staged for `func azure functionapp publish <app> --custom`, and bin/holdfast.zip for
# one-deploy or a package URL: host.json, the linux/amd64 handler (CGO disabled) and one folder per function at
# the zip root, the handler stored executable. Written by cmd/hfpackage (no zip tool needed), then checked.
package:
	$(GO) run ./cmd/hfpackage -stage $(PKGDIR) -zip $(PACKAGE_ZIP)

# deploy: the code to the Flex Consumption app infra/main.bicep created in RESOURCE_GROUP (azd up does this in
# its postdeploy hook). deploy-consumption: provision and deploy on the legacy Consumption plan (Y1).
deploy:
	RESOURCE_GROUP=$(RESOURCE_GROUP) ./scripts/deploy-flex.sh

deploy-consumption:
	RESOURCE_GROUP=$(RESOURCE_GROUP) LOCATION=$(LOCATION) ./scripts/deploy-consumption.sh

# deploy-job: provision hostingPlan=ContainerAppsJob, build the image in its registry (az acr build, no local
# Docker) and point the job at it.
deploy-job:
	PROVISION=1 RESOURCE_GROUP=$(RESOURCE_GROUP) LOCATION=$(LOCATION) ./scripts/deploy-job.sh

# --- reliability matrix (not in CI) ----------------------------------------------------------------
# reliability: every cell of processor behaviours × emulator faults × crash points against the in-process
# emulator and Azurite, with the end state of every message checked and the matrix printed as a table
# (here about 14 minutes for the plain cells, 15 more for the session cells at RELIABILITY_PARALLEL=6). make test
# runs a CI-sized selection of it (go test ./internal/reliability).
.PHONY: reliability
# Cells mostly wait (for locks, work, timers): RELIABILITY_PARALLEL of them run at once.
RELIABILITY_PARALLEL ?= 4
reliability: npm-deps
	@set -o pipefail; $(GO) test -count=1 -timeout 120m -parallel $(RELIABILITY_PARALLEL) -run '^TestReliability$$' -v \
	  ./internal/reliability -args -reliability.full | grep --line-buffered -v -E '^(=== (RUN|PAUSE|CONT)|    --- PASS)'

# --- benchmarks (not in CI) ----------------------------------------------------------------------
# bench writes BENCHMARKS.md from one run (about 5 minutes): a headline table, then P1 throughput of a run at
# the default settings against the raw SDK receive→complete loop, P2 renewals with 300 ms injected latency
# against two hand-written policies, P3 the deferred and dead-letter drains (1k vs 10k), P4 handler start-up,
# P5 emulator vs client CPU (sbbench), 1/2/4 worker instances on one queue (hfscale), the last `make soak`
# (docs/soak.json) and the micro-benchmarks. `go run ./cmd/hfbench <throughput|renew|startup>` runs one part.
bench: npm-deps
	$(GO) build -o bin/sbemulator ./cmd/sbemulator
	$(GO) build -o bin/handler ./handler
	$(GO) run ./cmd/hfbench report -out BENCHMARKS.md -go $(GO)

# soak: 100,000 messages with mixed outcomes through repeated ProcessQueue runs of the real handler (a few
# minutes); fails if a message is lost or a run leaves goroutines behind. Writes docs/soak.json, which
# make bench puts in BENCHMARKS.md with its date.
soak: npm-deps
	$(GO) build -o bin/sbemulator ./cmd/sbemulator
	$(GO) run ./cmd/hfbench soak -messages 100000 -out docs/soak.json
