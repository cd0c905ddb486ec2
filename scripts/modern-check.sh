#!/usr/bin/env bash
# Checks holdfast's SQL on a modern ClickHouse (26.x) without a server:
# chDB's libchdb.so (npm package @chdb/lib-linux-x64-gnu, ~170 MB) is
# ClickHouse as an embedded library. Fetched once into .tmp/chdb (never
# committed), then scripts/modern_check.py runs, through python3 ctypes,
# every DDL statement `holdfast schema` prints (single-server and, adapted,
# cluster), the v1->v2 migration's statements, and the queries README.md,
# DESIGN.md, scripts/demo.sh and docs/queries.md give users, asserting
# their answers.
#
#   scripts/modern-check.sh          exit 0 on PASS, 1 on FAIL, 2 if chDB
#                                    cannot be fetched (npm missing/offline)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
dir="$root/.tmp/chdb"
lib="$dir/package/libchdb.so"
pkg=@chdb/lib-linux-x64-gnu

command -v python3 >/dev/null || { echo "modern-check.sh: python3 is not on PATH" >&2; exit 2; }
if [ ! -s "$lib" ]; then
  command -v npm >/dev/null || { echo "modern-check.sh: npm is not on PATH (needed once to fetch $pkg)" >&2; exit 2; }
  version=$(timeout 60 npm view "$pkg" version 2>/dev/null | tail -1) || true
  [ -n "$version" ] || { echo "modern-check.sh: the npm registry does not answer for $pkg (offline?)" >&2; exit 2; }
  echo "modern-check.sh: fetching $pkg@$version (~170 MB, once) into $dir" >&2
  mkdir -p "$dir"
  rm -f "$dir"/*.tgz
  (cd "$dir" && timeout 900 npm pack --silent "$pkg@$version" >/dev/null) ||
    { echo "modern-check.sh: npm pack $pkg@$version failed" >&2; exit 2; }
  # Only the library: the rest of the package is headers and metadata.
  tar -xzf "$dir"/*.tgz -C "$dir" package/libchdb.so
  rm -f "$dir"/*.tgz
  [ -s "$lib" ] || { echo "modern-check.sh: $pkg@$version has no package/libchdb.so" >&2; exit 2; }
fi

# Always rebuilt: go build is a no-op when nothing changed, and a stale
# binary would check yesterday's schema.
go build -o bin/holdfast ./cmd/holdfast

# Bounded: a chDB that hangs (seen at shutdown with read-only Replicated
# tables) must fail make test, not stall it. A normal run takes seconds.
exec timeout 300 python3 scripts/modern_check.py "$lib" bin/holdfast forwarder/testdata/schema_v1.sql "$dir/work"
