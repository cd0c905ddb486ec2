#!/usr/bin/env bash
# make bench: the standard benchmark set, with real processes, on this machine.
#
#   scripts/bench.sh                 holdfast bench all (wal, insert, rfd125, max, outage, recovery,
#                                    peer); JSON, tables
#                                    and the rfd125 chart in bench/results/; then the
#                                    drain's peak heap (Go benchmark DrainPeakHeap, a
#                                    2 GiB backlog, at the collector's GOGC 50) into
#                                    bench/results/drain-peak-heap.txt
#   scripts/bench.sh go [PATTERN]    the Go benchmarks in bench/ (go test -bench PATTERN)
#
# BENCH_DURATION (default 2m) is each scenario's budget; BENCH_VMS (default
# 10,20,50,100) the rfd125 load steps (VMs per sled). Go benchmark knobs:
# HOLDFAST_BENCH_ROUNDS, HOLDFAST_BENCH_WAL_RECORDS_PER_WRITER,
# HOLDFAST_BENCH_DRAIN_SAMPLES, HOLDFAST_BENCH_BACKLOG_MIB, HOLDFAST_BENCH_VMS,
# HOLDFAST_BENCH_SECONDS, HOLDFAST_BENCH_LOGS.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
scripts/clickhouse.sh install
scripts/prometheus.sh install # the peer scenario's Prometheus agent
go build -o bin/holdfast ./cmd/holdfast

if [ "${1:-}" = go ]; then
  shift
  chdir="$root/.tmp/clickhouse-bench"
  scripts/clickhouse.sh stop "$chdir" 2>/dev/null || true
  rm -rf "$chdir"
  trap 'scripts/clickhouse.sh stop "$chdir"' EXIT
  eval "export $(scripts/clickhouse.sh start "$chdir")"
  echo "bench: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, ClickHouse $HOLDFAST_CLICKHOUSE, $(go version)"
  pattern=${1:-.}
  [ $# -gt 0 ] && shift
  # Not exec: the trap must stop this ClickHouse when the benchmark ends.
  go test ./bench -run '^$' -bench "$pattern" -benchtime 1x -timeout 60m "$@"
  exit
fi

mkdir -p bench/results
bin/holdfast bench all --duration "${BENCH_DURATION:-2m}" --vms "${BENCH_VMS:-10,20,50,100}" --out bench/results --dir "$root/.tmp/bench" "$@"
# The drain's peak heap is measured inside one process (the Go heap and the
# per-series state mapped beside it), so it is a Go benchmark, not a
# scenario of holdfast bench. It runs at the collector's default GOGC
# (--gc-percent 50), as a collector's drain does.
GOGC=${GOGC:-50} "$root/scripts/bench.sh" go DrainPeakHeap | tee bench/results/drain-peak-heap.txt
