#!/usr/bin/env bash
# The README's test command (make test): installs what is missing (Debian's
# clickhouse-server, zookeeper and prometheus, Go modules, chDB for the ClickHouse 26.5
# check scripts/modern-check.sh, which it runs first), starts a private ClickHouse
# and a private 2 shards x 2 replicas cluster (scripts/chcluster.sh) on free
# ports, runs every Go test with the race detector, and stops them.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

command -v go >/dev/null || { echo "test.sh: go is not on PATH" >&2; exit 1; }
scripts/clickhouse.sh install
scripts/chcluster.sh install
# Debian's prometheus: its binary runs bench's peer scenario test (its
# service is never started) and its promtool checks docs/alerts.yml and every
# daemon's /metrics (cmd/holdfast/promtool_test.go). Locally a failed install
# skips those tests; under CI=true it fails.
if ! scripts/prometheus.sh install || ! command -v promtool >/dev/null; then
  [ "${CI:-}" = true ] && { echo "test.sh: CI=true and prometheus/promtool could not be installed" >&2; exit 1; }
  echo "test.sh: SKIPPING the peer and promtool tests: prometheus is not installed" >&2
fi
go mod download

# holdfast's SQL on ClickHouse 26.5 (chDB, fetched once into .tmp/chdb):
# no server needed, a few seconds once fetched. Locally a missing npm or
# registry skips it with a message; under CI=true that fails the run.
mkdir -p "$root/.tmp"
set +e
scripts/modern-check.sh >"$root/.tmp/modern-check.log" 2>&1
mc=$?
set -e
tail -n 1 "$root/.tmp/modern-check.log"
case $mc in
0) ;;
2) if [ "${CI:-}" = true ]; then
     cat "$root/.tmp/modern-check.log" >&2
     echo "test.sh: CI=true and the modern ClickHouse check (chDB) could not run" >&2
     exit 1
   fi
   echo "test.sh: SKIPPING the modern ClickHouse check: $(grep 'modern-check.sh:' "$root/.tmp/modern-check.log" | tail -n 1)" >&2 ;;
*) grep -v '^PASS' "$root/.tmp/modern-check.log" >&2
   echo "test.sh: the modern ClickHouse check (scripts/modern-check.sh) failed; full log .tmp/modern-check.log" >&2
   exit 1 ;;
esac

chdir="$root/.tmp/clickhouse-test"
scripts/clickhouse.sh stop "$chdir" 2>/dev/null || true
rm -rf "$chdir"
cldir="$root/.tmp/chcluster-test"
scripts/chcluster.sh stop "$cldir" 2>/dev/null || true
rm -rf "$cldir"
trap 'scripts/clickhouse.sh stop "$chdir"; scripts/chcluster.sh stop "$cldir"' EXIT
eval "export $(scripts/clickhouse.sh start "$chdir")"
echo "test.sh: ClickHouse at $HOLDFAST_CLICKHOUSE (logs in $chdir/log)"
export HOLDFAST_CLICKHOUSE_DIR="$chdir" # its http_port file, for forwarder.TestWrongPortSaysSoAtOnce
# The cluster tests (forwarder/cluster_test.go) use it; the others never do.
clenv=$(scripts/chcluster.sh start "$cldir")
for line in $clenv; do export "$line"; done
echo "test.sh: ClickHouse cluster $HOLDFAST_CLICKHOUSE_CLUSTER_NAME at $HOLDFAST_CLICKHOUSE_CLUSTER (logs in $cldir)"

# Two packages at a time: the machine has two cores and ClickHouse shares them.
go test -race -p 2 -timeout 14m -count=1 ./... "$@"
