# nvmeperf build and test entry points. `make test` is what CI runs (.ci/run).
GO        ?= go
BIN       := bin/nvmeperf
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS   := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)

.PHONY: all build test unit vmtest bench lint deps clean

all: build

deps:
	@command -v $(GO) >/dev/null || { echo "make: Go toolchain not found; install Go 1.24 or newer" >&2; exit 1; }
	$(GO) mod download

build: deps
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/nvmeperf

# test: unit and end-to-end tests with the race detector, then the QEMU lab.
test: unit vmtest

unit: deps
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 15m ./...

vmtest: build
	@if [ -x scripts/vmtest.sh ]; then scripts/vmtest.sh; else echo "vmtest: scripts/vmtest.sh not present, skipped"; fi

bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./driver/...
	@for s in bench/*.sh; do [ -x "$$s" ] && "$$s"; done; true

lint: deps
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed" >&2; exit 1; }
	$(GO) vet ./...

clean:
	rm -rf bin build
