#!/usr/bin/env bash
# The README's test command (make test): installs what is missing (Debian's
# clickhouse-server, Go modules), starts a private ClickHouse on free ports,
# runs every Go test with the race detector, and stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

command -v go >/dev/null || { echo "test.sh: go is not on PATH" >&2; exit 1; }
scripts/clickhouse.sh install
go mod download

chdir="$root/.tmp/clickhouse-test"
scripts/clickhouse.sh stop "$chdir" 2>/dev/null || true
rm -rf "$chdir"
trap 'scripts/clickhouse.sh stop "$chdir"' EXIT
eval "export $(scripts/clickhouse.sh start "$chdir")"
echo "test.sh: ClickHouse at $HOLDFAST_CLICKHOUSE (logs in $chdir/log)"

# Two packages at a time: the machine has two cores and ClickHouse shares them.
go test -race -p 2 -timeout 14m -count=1 ./... "$@"
