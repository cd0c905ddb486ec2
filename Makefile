# holdfast: see README.md. `make test` and `make demo` work on a fresh machine.
GO ?= go
BIN := bin/holdfast
# Stamped into `holdfast version` and holdfast_build_info; a plain
# `go build ./cmd/holdfast` works without them (it reads the VCS stamp).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
BUILD_DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -X main.version=$(VERSION) -X main.revision=$(REVISION) -X main.buildDate=$(BUILD_DATE)

.PHONY: all build test test-short vet fmt bench demo clean clickhouse-start clickhouse-stop

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/holdfast

# Installs ClickHouse if missing, starts a private server, runs go test -race ./...
test:
	scripts/test.sh

test-short:
	scripts/test.sh -short

vet:
	gofmt -l $$(git ls-files '*.go') | (! grep .) || (echo "gofmt needed"; exit 1)
	$(GO) vet ./...

bench:
	scripts/bench.sh

demo: build
	scripts/demo.sh

clickhouse-start:
	scripts/clickhouse.sh start .tmp/clickhouse

clickhouse-stop:
	scripts/clickhouse.sh stop .tmp/clickhouse

clean:
	rm -rf bin .tmp
