#!/usr/bin/env bash
# The README's test command (make test): installs what is missing (Debian's
# clickhouse-server and zookeeper, Go modules, chDB for the ClickHouse 26.5
# check scripts/modern-check.sh, which it runs first), starts a private ClickHouse
# and a private 2 shards x 2 replicas cluster (scripts/chcluster.sh) on free
# ports, runs every Go test with the race detector, and stops them.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

command -v go >/dev/null || { echo "test.sh: go is not on PATH" >&2; exit 1; }
scripts/clickhouse.sh install
scripts/chcluster.sh install
# promtool (Debian's prometheus package) checks docs/alerts.yml and every
# daemon's /metrics (cmd/holdfast/promtool_test.go). The package's
# Prometheus service must not start, or stay running: policy-rc.d refuses
# service starts during the install, and a running one is stopped.
if ! command -v promtool >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  prc=/usr/sbin/policy-rc.d
  had_prc=false; [ -e "$prc" ] && had_prc=true
  $had_prc || { printf '#!/bin/sh\nexit 101\n' | $sudo tee "$prc" >/dev/null; $sudo chmod +x "$prc"; }
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >&2 ||
    { $sudo apt-get update -qq >&2; DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >&2; }
  $had_prc || $sudo rm -f "$prc"
  if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
    $sudo systemctl stop prometheus; $sudo systemctl disable prometheus 2>/dev/null || true
  fi
  command -v promtool >/dev/null || { echo "test.sh: promtool is still missing after apt-get install prometheus" >&2; exit 1; }
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
