# nvmeperf build and test entry points. `make test` is what CI runs (.ci/run).
GO        ?= go
BIN       := bin/nvmeperf
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS   := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)

.PHONY: all build run man test-tools test unit vmtest bench lint deps clean

all: build

deps:
	@command -v $(GO) >/dev/null || { echo "make: Go toolchain not found; install Go 1.24 or newer" >&2; exit 1; }
	$(GO) mod download

build: deps
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/nvmeperf

# run: build, then run the main job on the embedded simulated controller.
run: build
	$(BIN) -q 128 -o 4096 -w randread -t 10 -r 'trtype:sim' -L

# man: man pages generated from the command tree.
man: build
	$(BIN) gen-man build/man

# test-tools: what the tests use from Debian when it is missing: fio
# (fio_jsonplus_clat2csv, for the fio-json test), openmpi-bin (mpirun, for the
# launch test across ranks), time (/usr/bin/time) and python3 (the bench/ scripts'
# smoke test). Without apt-get those tests skip and say why.
TEST_TOOLS := fio_jsonplus_clat2csv:fio mpirun:openmpi-bin /usr/bin/time:time python3:python3
test-tools:
	@missing=; for t in $(TEST_TOOLS); do command -v $${t%%:*} >/dev/null 2>&1 || missing="$$missing $${t#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null 2>&1; then \
	    SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	    echo "make: installing Debian packages$$missing for the tests"; \
	    $$SUDO apt-get install -y --no-install-recommends $$missing || { $$SUDO apt-get update && $$SUDO apt-get install -y --no-install-recommends $$missing; } || \
	      echo "make: could not install$$missing; the tests that need them will be skipped"; \
	  else echo "make: apt-get unavailable; tests needing$$missing will be skipped"; fi; fi

# test: unit and end-to-end tests with the race detector, then the QEMU lab.
test: unit vmtest

unit: deps test-tools
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
