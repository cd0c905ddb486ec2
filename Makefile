# holdfast: see README.md. `make test` and `make demo` work on a fresh machine.
GO ?= go
BIN := bin/holdfast
# Stamped into `holdfast version` and holdfast_build_info; a plain
# `go build ./cmd/holdfast` works without them (it reads the VCS stamp).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
BUILD_DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -X main.version=$(VERSION) -X main.revision=$(REVISION) -X main.buildDate=$(BUILD_DATE)

# make install PREFIX=/usr/local [DESTDIR=...]: the binary, the systemd
# units (collector, registry) and the example configs; a config file
# already in SYSCONFDIR/holdfast is never overwritten.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR ?= $(PREFIX)/lib/systemd/system
EXAMPLEDIR ?= $(PREFIX)/share/doc/holdfast/examples

.PHONY: all build test test-short vet fmt bench demo clean clickhouse-start clickhouse-stop install

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/holdfast

install: build
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(EXAMPLEDIR) $(DESTDIR)$(SYSCONFDIR)/holdfast
	install -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/holdfast
	for d in collector registry; do \
	  sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' packaging/systemd/holdfast-$$d.service >$(DESTDIR)$(UNITDIR)/holdfast-$$d.service && \
	  chmod 0644 $(DESTDIR)$(UNITDIR)/holdfast-$$d.service; \
	done
	install -m 0644 packaging/examples/collector.yml packaging/examples/registry.yml packaging/examples/producer.yml $(DESTDIR)$(EXAMPLEDIR)/
	for d in collector registry; do \
	  [ -e $(DESTDIR)$(SYSCONFDIR)/holdfast/$$d.yml ] || install -m 0640 packaging/examples/$$d.yml $(DESTDIR)$(SYSCONFDIR)/holdfast/$$d.yml; \
	done

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
