# holdfast: see README.md. `make test` and `make demo` work on a fresh machine.
GO ?= go
BIN := bin/holdfast

.PHONY: all build test test-short vet fmt bench demo clean clickhouse-start clickhouse-stop

all: build

build:
	$(GO) build -o $(BIN) ./cmd/holdfast

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
