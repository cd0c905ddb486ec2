#!/usr/bin/env bash
# Regenerates docs/status-page.png and docs/registry-page.png: a registry,
# three collectors and eight producers (a private ClickHouse), one producer
# killed so the collector's page shows a failing row, then headless
# Chromium (Debian `chromium`) screenshots of the pages at `/`. Also prints
# `holdfast status --registry` of the same fleet.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
command -v chromium >/dev/null || { echo "status-screenshot: needs chromium (apt-get install -y chromium)" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

make build >/dev/null
scripts/clickhouse.sh install
chdir="$root/.tmp/shot-clickhouse"
work="$root/.tmp/shot"
rm -rf "$work"; mkdir -p "$work" docs
eval "export $(scripts/clickhouse.sh start "$chdir")"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  scripts/clickhouse.sh stop "$chdir"
}
trap cleanup EXIT

reg=127.0.0.1:$(free_port)
bin/holdfast registry --listen "$reg" --data-dir "$work/registry" --producer-lease 6s --collector-lease 6s >"$work/registry.log" 2>&1 &
pids+=($!)
admins=()
for i in 0 1 2; do
  a=127.0.0.1:$(free_port); admins+=("$a")
  bin/holdfast collector --listen "$a" --data-dir "$work/col$i" --clickhouse "$HOLDFAST_CLICKHOUSE" --database holdfast_shot \
    --id "sled-$i" --registry "http://$reg" --refresh 1s --flush-age 1s >"$work/col$i.log" 2>&1 &
  pids+=($!)
done
sleep 2
prods=()
for i in $(seq 0 7); do
  bin/holdfast producer --listen "127.0.0.1:$(free_port)" --vms 20 --vm-offset $((i * 20)) --interval 1s \
    --id "vm-host-$i" --registry "http://$reg" >"$work/prod$i.log" 2>&1 &
  pids+=($!); prods+=($!)
done
sleep 10
# A producer on sled-0 dies (SIGKILL: no deregistration): its collector
# shows it failing until the registry's lease for it runs out.
victim=$(curl -s "http://${admins[0]}/v1/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["producers"][-1]["id"])')
kill -9 "${prods[${victim#vm-host-}]}"
sleep 2
bin/holdfast status --registry "$reg" >"$work/status.txt" || true
chromium --headless --no-sandbox --disable-gpu --screenshot="$root/docs/status-page.png" --window-size=1200,900 "http://${admins[0]}/" 2>/dev/null
chromium --headless --no-sandbox --disable-gpu --screenshot="$root/docs/registry-page.png" --window-size=1200,900 "http://$reg/" 2>/dev/null
cat "$work/status.txt"
echo "status-screenshot: wrote docs/status-page.png and docs/registry-page.png ($victim killed)"
