# holdfast — developer entry points. `make test` is what CI runs.
SHELL := /bin/bash
GO    ?= go

.PHONY: test
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

# --- local run and packaging -------------------------------------------------------------------
# The Functions host finds functions only at the app root, so dist/ is staged from host.json, the
# function folders and the handler binary.
DIST        ?= dist
PKGDIR      ?= bin/package
PACKAGE_ZIP ?= bin/holdfast.zip
DEMO_ARGS   ?=

.PHONY: build dist start demo package

dist:
	rm -rf $(DIST)
	mkdir -p $(DIST)
	cp host.json $(DIST)/
	cp -R functions/. $(DIST)/

build: dist
	CGO_ENABLED=0 $(GO) build -trimpath -o $(DIST)/handler ./handler

start:
	./scripts/start.sh

demo:
	$(GO) run ./cmd/demosend $(DEMO_ARGS)

# package: the zip for `func azure functionapp publish <app> --custom` or one-deploy: host.json,
# the linux/amd64 handler and one folder per function at the zip root.
package:
	rm -rf $(PKGDIR) $(PACKAGE_ZIP)
	mkdir -p $(PKGDIR)
	cp host.json $(PKGDIR)/
	cp -R functions/. $(PKGDIR)/
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags="-s -w" -o $(PKGDIR)/handler ./handler
	cd $(PKGDIR) && zip -q -r -X $(abspath $(PACKAGE_ZIP)) .
	@echo "wrote $(PACKAGE_ZIP)"
