#!/bin/bash
# A/B of collector builds on RFD 125's load without the bench harness: NPROD
# producer processes of 10,000 VMs each (22 samples per VM every 10 s), one
# collector (--interval 1s --flush-age 2s), a running ClickHouse. After 25 s
# of warm-up it measures 40 s: samples collected per second, the collector's
# CPU seconds per million samples (utime+stime from /proc), producer drops,
# the backlog and peak RSS. One line per run; alternate builds, run each
# several times (this machine is shared and noisy).
#
#   scripts/collector-ab.sh BINARY CLICKHOUSE_ADDR DATABASE NPROD [collector flags...]
#   e.g. scripts/collector-ab.sh bin/holdfast 127.0.0.1:9000 ab 10 --memory-limit 512MiB
set -uo pipefail
BIN=$1; CH=$2; DB=$3; NP=$4; shift 4; EXTRA="$*"
D=$(mktemp -d /tmp/holdfast-ab.XXXXXX); args=""; pids=()
cleanup() { kill -9 "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$D"; }
trap cleanup EXIT
for i in $(seq 0 $((NP-1))); do
  port=$((19600+i))
  $BIN producer --listen 127.0.0.1:$port --vms 10000 --vm-offset $((i*10000)) --interval 10s --max-samples 2000000 >"$D/p$i.log" 2>&1 &
  pids+=($!); args="$args --producer http://127.0.0.1:$port"
done
sleep 1
# shellcheck disable=SC2086
$BIN collector --data-dir "$D/data" --listen 127.0.0.1:19590 --clickhouse "$CH" --database "$DB" --interval 1s --flush-age 2s $EXTRA $args >"$D/c.log" 2>&1 &
pid=$!; pids+=($pid)
sleep 25
st() { curl -s 127.0.0.1:19590/v1/status | python3 -c "import json,sys; d=json.load(sys.stdin); print(sum(p['samples'] for p in d['producers']), sum(p.get('producer_dropped',0) for p in d['producers']))"; }
t0=$(awk '{print $14+$15}' /proc/$pid/stat); read -r s0 _ < <(st)
sleep 40
t1=$(awk '{print $14+$15}' /proc/$pid/stat); read -r s1 d1 < <(st)
rss=$(awk '/VmHWM/{print $2}' /proc/$pid/status)
bl=$(curl -s 127.0.0.1:19590/v1/checkpoint | python3 -c "import json,sys; print(json.load(sys.stdin).get('backlog_records'))")
hz=$(getconf CLK_TCK)
echo "$(basename "$BIN") producers=$NP flags='$EXTRA' rate=$(( (s1-s0)/40 ))/s cpu_s_per_M=$(python3 -c "print(round(($t1-$t0)/$hz/max(1,($s1-$s0))*1e6,2))") dropped=$d1 backlog=$bl peak_rss_MiB=$((rss/1024))"
