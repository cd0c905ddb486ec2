// Command holdfast is the holdfast metrics collector's single binary.
//
//	holdfast collector ...                  collect from producers into the WAL and ClickHouse
//	holdfast producer ...                   a demo producer of simulated VM metrics
//	holdfast wal verify DIR                 check every record of a WAL (DIR: WAL or data dir)
//	holdfast wal repair --skip I DIR        replace exactly one damaged record, keep the rest
//	holdfast wal dump DIR [--from I --to J] one line per record
//	holdfast schema [--database NAME]       print the ClickHouse DDL
//	holdfast forward --data-dir DIR ...     drain a WAL into ClickHouse
//	holdfast quarantine list|show|export|replay  what was refused, and re-submitting it
//
// Run `holdfast help` for the list.
package main

import (
	"fmt"
	"io"
	"os"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

const usage = `holdfast: a metrics collector that never loses what it has taken.

Usage:
  holdfast collector [--data-dir DIR] [--listen ADDR] [--clickhouse HOST:PORT] [--database NAME]
                     [--producer URL ...] [--registry URL] [--interval D] [--wal-budget SIZE] [--config FILE]
                                               collect from producers into the WAL and ClickHouse
  holdfast registry [--listen ADDR] [--data-dir DIR] [--replicas N]
                                               assign producers to collectors (leases, paginated listings)
  holdfast producer [--listen ADDR] [--vms N] [--interval D] [--total-samples N] [--registry URL]
                                               a demo producer: simulated VMs (RFD 125's load shape)
  holdfast bench SCENARIO|all [--duration D] [--out FILE] [--clickhouse HOST:PORT]
                                               benchmarks with real processes (wal, insert, rfd125, max, outage, recovery, peer)
  holdfast status [--registry URL] [COLLECTOR ...] [--format text|json]
                                               the fleet: collectors, producers, lag, errors; exit 1 unless healthy
  holdfast status [--admin ADDR] --watch D [--until-samples N [--timeout D]]
                                               a line per interval about one collector
  holdfast wal verify DIR                      check every record of a WAL (read-only); with a data
                                               directory, also the checkpoint against the WAL
  holdfast wal repair --skip INDEX [--records N] DIR
                                               replace exactly the damaged record(s) at INDEX with
                                               placeholders, keeping every record after it
  holdfast wal dump DIR [--from I] [--to J]    print one line per record
  holdfast schema [--database NAME]            print the ClickHouse schema (DDL)
  holdfast forward --data-dir DIR [--clickhouse HOST:PORT] [--database NAME]
                   [--generate N] [--exit-when-drained]
                                               drain a data directory's WAL into ClickHouse
  holdfast quarantine list|show|export|replay|delete [--data-dir DIR | --admin ADDR] [ID ...]
                                               refused samples and records: see, export, re-submit, delete
  holdfast version | --version                 version, revision, Go version and build date
  holdfast help                                this text

Daemons (collector, registry, producer) take --config FILE (YAML or JSON: one key per
flag, --wal-budget is wal_budget; flags win over it) and --print-config (the effective
configuration as YAML), --log.level debug|info|warn|error and --log.format logfmt|json,
log their start-up summary and every shutdown step, serve holdfast_build_info on /metrics
where they serve /metrics, and survive SIGHUP (the collector reloads its --config file's
producers, intervals and log level; the registry and the producer their log level). Sizes: KB MB GB are powers of
ten, KiB MiB GiB powers of two. Addresses: host:port to listen on and for ClickHouse,
http://host:port for producers and the registry. packaging/ has systemd units and
example configs (make install PREFIX=...).

Exit status: 0 on success, 1 when a check finds a problem, 2 on bad usage.
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "wal":
		return runWAL(args[1:], stdout, stderr)
	case "schema":
		return runSchema(args[1:], stdout, stderr)
	case "forward":
		return runForward(args[1:], stdout, stderr)
	case "collector":
		return runCollector(args[1:], stdout, stderr)
	case "producer":
		return runProducer(args[1:], stdout, stderr)
	case "status":
		return runStatus(args[1:], stdout, stderr)
	case "registry":
		return runRegistry(args[1:], stdout, stderr)
	case "bench":
		return runBench(args[1:], stdout, stderr)
	case "quarantine":
		return runQuarantine(args[1:], stdout, stderr)
	case "version", "--version":
		return runVersion(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "holdfast: unknown command %q\n\n%s", args[0], usage)
	return 2
}
