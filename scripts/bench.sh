#!/usr/bin/env bash
# make bench: start a private ClickHouse and run the benchmarks behind
# BENCHMARKS.md. Environment knobs (defaults in parentheses):
#   HOLDFAST_BENCH_ROUNDS (5 for the WAL, 3 for the drain)  alternating rounds per ratio
#   HOLDFAST_BENCH_WAL_RECORDS_PER_WRITER (256)             16 KiB records per writer, 64 writers
#   HOLDFAST_BENCH_DRAIN_SAMPLES (1000000)                  samples per drain round
#   HOLDFAST_BENCH_BACKLOG_MIB (2048)                       backlog for the peak-heap run
# Extra arguments go to `go test` (e.g. -bench WAL to run one).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
scripts/clickhouse.sh install
chdir="$root/.tmp/clickhouse-bench"
scripts/clickhouse.sh stop "$chdir" 2>/dev/null || true
rm -rf "$chdir"
trap 'scripts/clickhouse.sh stop "$chdir"' EXIT
eval "export $(scripts/clickhouse.sh start "$chdir")"
echo "bench: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, ClickHouse $HOLDFAST_CLICKHOUSE, $(go version)"
bench=${1:-.}
[ $# -gt 0 ] && shift
go test ./bench -run '^$' -bench "$bench" -benchtime 1x -timeout 60m "$@"
