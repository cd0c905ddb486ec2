#!/usr/bin/env bash
# make demo: the real system on this machine. A private ClickHouse, two demo
# producers (simulated VMs in RFD 125's shape) and one collector; progress
# while it runs, then a ClickHouse query showing the data landed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
vms=${DEMO_VMS:-1000}              # per producer; 22 samples per VM per interval
per_producer=${DEMO_SAMPLES:-110000}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

scripts/clickhouse.sh install
chdir="$root/.tmp/demo-clickhouse"
data="$root/.tmp/demo-data"
rm -rf "$data" "$root/.tmp/demo-logs"; mkdir -p "$root/.tmp/demo-logs"
logs="$root/.tmp/demo-logs"
eval "export $(scripts/clickhouse.sh start "$chdir")"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  scripts/clickhouse.sh stop "$chdir"
}
trap cleanup EXIT
echo "demo: ClickHouse 18.16 at $HOLDFAST_CLICKHOUSE"
clickhouse-client --port "${HOLDFAST_CLICKHOUSE##*:}" -q "DROP DATABASE IF EXISTS holdfast_demo"

p1=127.0.0.1:$(free_port); p2=127.0.0.1:$(free_port); admin=127.0.0.1:$(free_port)
# Each producer simulates its own VMs (ids 0..vms-1 and vms..2*vms-1), as two
# hosts of a real fleet would: no timeseries has two sources.
offset=0
for p in "$p1" "$p2"; do
  bin/holdfast producer --listen "$p" --vms "$vms" --vm-offset "$offset" --interval 1s --total-samples "$per_producer" >>"$logs/producers.log" 2>&1 &
  pids+=($!)
  offset=$((offset + vms))
done
echo "demo: 2 producers ($vms VMs each, ids 0-$((vms - 1)) and $vms-$((2 * vms - 1)); 22 measurements per VM every second, $per_producer samples each) on $p1 and $p2"
bin/holdfast collector --data-dir "$data" --listen "$admin" --clickhouse "$HOLDFAST_CLICKHOUSE" --database holdfast_demo \
  --producer "http://$p1" --producer "http://$p2" --interval 1s --flush-age 1s >"$logs/collector.log" 2>&1 &
collector=$!
pids+=($collector)
echo "demo: collector admin API on http://$admin (logs in $logs)"
echo
bin/holdfast status --admin "$admin" --watch 1s --until-samples $((2 * per_producer)) --timeout 5m
curl -fsS -X POST "http://$admin/v1/flush" >/dev/null
echo
echo "demo: producers' view (released = acknowledged by the collector after its WAL fsync):"
for p in "$p1" "$p2"; do curl -fsS "http://$p/v1/stats" | python3 -c 'import json,sys; s=json.load(sys.stdin); print("  %s produced=%d released=%d dropped=%d pending=%d" % (s["producer"], s["produced"], s["released"], s["dropped"], s["pending"]))'; done

port=${HOLDFAST_CLICKHOUSE##*:}
query="SELECT timeseries_name, count() AS samples FROM (
  SELECT timeseries_name FROM holdfast_demo.measurements_f64 FINAL
  UNION ALL SELECT timeseries_name FROM holdfast_demo.measurements_i64 FINAL
  UNION ALL SELECT timeseries_name FROM holdfast_demo.measurements_cumulative_u64 FINAL
  UNION ALL SELECT timeseries_name FROM holdfast_demo.measurements_histogram_f64 FINAL
) GROUP BY timeseries_name WITH TOTALS ORDER BY timeseries_name"
echo
echo "demo: $query"
clickhouse-client --port "$port" --format PrettyCompact -q "$query"
# ALL, not ANY: from ClickHouse 20.x on, ANY INNER JOIN keeps one row per
# key on the left too (one sample per VM); on 18.16 both give every sample,
# the right side having one row per key (scripts/modern-check.sh checks it).
q2="SELECT v.field_value AS vm, count() AS samples, round(min(m.datum), 1) AS min_cpu_busy, round(avg(m.datum), 1) AS avg, round(max(m.datum), 1) AS max
FROM holdfast_demo.measurements_f64 AS m FINAL
ALL INNER JOIN (SELECT timeseries_key, field_value FROM holdfast_demo.fields_u64 FINAL WHERE field_name = 'vm') AS v USING timeseries_key
WHERE m.timeseries_name = 'virtual_machine:cpu_busy' AND v.field_value IN (0, 1, $vms, $((vms + 1)))
GROUP BY vm ORDER BY vm"
echo
echo "demo: CPU busy (%) of two VMs of each producer: $q2"
clickhouse-client --port "$port" --format PrettyCompact -q "$q2"
q3="SELECT timeseries_name, version, arrayStringConcat(fields_name, ',') AS fields, datum_type FROM holdfast_demo.timeseries_schema FINAL ORDER BY timeseries_name, version"
echo
echo "demo: every schema version seen: $q3"
clickhouse-client --port "$port" --format PrettyCompact -q "$q3"
kill -TERM "$collector"; wait "$collector" || true
echo
echo "demo: collector stopped cleanly (SIGTERM drains); its WAL:"
bin/holdfast wal verify "$data/wal" | tail -n 2
