#!/usr/bin/env bash
# make demo: start a private ClickHouse, put simulated fleet samples through
# holdfast's WAL and forwarder, and show them landing in ClickHouse.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
samples=${DEMO_SAMPLES:-220000}

scripts/clickhouse.sh install
chdir="$root/.tmp/demo-clickhouse"
data="$root/.tmp/demo-data"
rm -rf "$data"
eval "export $(scripts/clickhouse.sh start "$chdir")"
trap 'scripts/clickhouse.sh stop "$chdir"' EXIT
echo "demo: ClickHouse 18.16 running at $HOLDFAST_CLICKHOUSE (data in $chdir)"

echo "demo: writing $samples samples (1,000 simulated VMs x 22 measurements) into the WAL and forwarding them"
bin/holdfast forward --data-dir "$data" --clickhouse "$HOLDFAST_CLICKHOUSE" --database holdfast_demo \
  --generate "$samples" --exit-when-drained

port=${HOLDFAST_CLICKHOUSE##*:}
query="SELECT table, sum(rows) AS rows FROM (
  SELECT 'measurements_f64' AS table, count() AS rows FROM holdfast_demo.measurements_f64 FINAL
  UNION ALL SELECT 'measurements_i64', count() FROM holdfast_demo.measurements_i64 FINAL
  UNION ALL SELECT 'measurements_cumulative_u64', count() FROM holdfast_demo.measurements_cumulative_u64 FINAL
  UNION ALL SELECT 'measurements_histogram_f64', count() FROM holdfast_demo.measurements_histogram_f64 FINAL
) GROUP BY table ORDER BY table"
echo
echo "demo: $query"
clickhouse-client --port "$port" --format PrettyCompact -q "$query"
echo
echo "demo: the busiest CPU series:"
q2="SELECT timeseries_key, count() AS samples, round(avg(datum), 2) AS avg_cpu_busy
FROM holdfast_demo.measurements_f64 FINAL WHERE timeseries_name = 'virtual_machine:cpu_busy'
GROUP BY timeseries_key ORDER BY samples DESC, timeseries_key LIMIT 3"
echo "$q2"
clickhouse-client --port "$port" --format PrettyCompact -q "$q2"
echo
bin/holdfast wal verify "$data/wal" | tail -n 2
