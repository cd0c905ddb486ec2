#!/usr/bin/env bash
# The RFD 125 demo load into the local 2 shards x 2 replicas cluster, with a
# replica SIGKILLed and restarted under load: two demo producers, one
# collector with --cluster and two of the cluster's servers as addresses.
# Replica 1 (the collector's first address) is killed once the data flows
# and restarted a few seconds later. At the end the producers' released
# counts are compared with exact counts through the Distributed tables
# (FINAL) and plain counts (no FINAL).
#
#   scripts/cluster-demo.sh            (DEMO_VMS, DEMO_SAMPLES as for make demo)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
vms=${DEMO_VMS:-1000}
per_producer=${DEMO_SAMPLES:-220000}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

go build -o bin/holdfast ./cmd/holdfast
cldir="$root/.tmp/demo-cluster"
data="$root/.tmp/cluster-demo-data"
logs="$root/.tmp/cluster-demo-logs"
rm -rf "$data" "$logs"; mkdir -p "$logs"
for line in $(scripts/chcluster.sh start "$cldir"); do export "$line"; done
IFS=, read -r a1 a2 a3 a4 <<<"$HOLDFAST_CLICKHOUSE_CLUSTER"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  scripts/chcluster.sh stop "$cldir"
}
trap cleanup EXIT
q() { clickhouse-client --port "${a4##*:}" -q "$1"; }
q "DROP DATABASE IF EXISTS holdfast_demo ON CLUSTER $HOLDFAST_CLICKHOUSE_CLUSTER_NAME" >/dev/null
echo "cluster-demo: cluster $HOLDFAST_CLICKHOUSE_CLUSTER_NAME at $HOLDFAST_CLICKHOUSE_CLUSTER"

p1=127.0.0.1:$(free_port); p2=127.0.0.1:$(free_port); admin=127.0.0.1:$(free_port)
offset=0
for p in "$p1" "$p2"; do
  bin/holdfast producer --listen "$p" --vms "$vms" --vm-offset "$offset" --interval 1s --total-samples "$per_producer" >>"$logs/producers.log" 2>&1 &
  pids+=($!)
  offset=$((offset + vms))
done
began=$(date +%s.%N)
bin/holdfast collector --data-dir "$data" --listen "$admin" --clickhouse "$a1,$a3" --cluster "$HOLDFAST_CLICKHOUSE_CLUSTER_NAME" \
  --database holdfast_demo --producer "http://$p1" --producer "http://$p2" --interval 1s --flush-age 1s >"$logs/collector.log" 2>&1 &
pids+=($!)
echo "cluster-demo: 2 producers x $per_producer samples; collector admin on http://$admin (logs in $logs)"
sleep 4
echo "cluster-demo: SIGKILL replica 1 ($a1, the collector's first address)"
scripts/chcluster.sh kill "$cldir" 1
sleep 5
echo "cluster-demo: restart replica 1"
scripts/chcluster.sh restart "$cldir" 1 >/dev/null
bin/holdfast status --admin "$admin" --watch 2s --until-samples $((2 * per_producer)) --timeout 5m | tail -n 3
curl -fsS -X POST "http://$admin/v1/flush" >/dev/null
ended=$(date +%s.%N)
released=0
for p in "$p1" "$p2"; do
  r=$(curl -fsS "http://$p/v1/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["released"])')
  released=$((released + r))
done
sum_query() {
  local final=$1 parts=() t
  for t in $(q "SELECT name FROM system.tables WHERE database = 'holdfast_demo' AND name LIKE 'measurements%' AND engine = 'Distributed'"); do
    parts+=("(SELECT count() FROM holdfast_demo.$t $final)")
  done
  q "SELECT $(IFS=+; echo "${parts[*]}")"
}
final=$(sum_query FINAL)
plain=$(sum_query "")
echo "cluster-demo: producers released $released samples; through Distributed: $final with FINAL, $plain without"
echo "cluster-demo: $(python3 -c "print('%.1f s, %.0f samples/s' % ($ended - $began, $released / ($ended - $began)))")"
grep -c "delivery failed" "$logs/collector.log" | sed 's/^/cluster-demo: failed deliveries retried: /'
[ "$final" = "$released" ] || { echo "cluster-demo: LOST OR DUPLICATED: $final != $released" >&2; exit 1; }
echo "cluster-demo: exactly once (0 lost, 0 duplicates with FINAL)"
