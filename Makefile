# holdfast — developer entry points. `make test` is what CI runs.
SHELL := /bin/bash
GO    ?= go

.PHONY: test
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...
