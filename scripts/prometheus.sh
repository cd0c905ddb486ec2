#!/usr/bin/env bash
# Debian's prometheus (2.42 on bookworm) for `holdfast bench peer` and its test:
# only the binary is used, run by the bench as a plain process in agent mode.
#
#   scripts/prometheus.sh install    install it if missing, without starting its service
#   scripts/prometheus.sh path       print the binary's path (exit 1 if missing)
set -euo pipefail

die() { echo "prometheus.sh: $*" >&2; exit 1; }

bin() {
  command -v prometheus 2>/dev/null || { [ -x /usr/bin/prometheus ] && echo /usr/bin/prometheus; } || true
}

install_prometheus() {
  if [ -n "$(bin)" ]; then return 0; fi
  echo "prometheus.sh: installing Debian's prometheus (its service is not started)" >&2
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  # policy-rc.d exit 101 tells invoke-rc.d not to start the package's
  # service: the bench runs the binary itself, on its own ports and data dir.
  local policy=/usr/sbin/policy-rc.d ours=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod +x "$policy"
    ours=1
  fi
  local rc=0
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >&2 ||
    { $sudo apt-get update -qq >&2; DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >&2; } || rc=$?
  [ -z "$ours" ] || $sudo rm -f "$policy"
  [ "$rc" = 0 ] || die "apt-get install prometheus failed ($rc)"
  # Where systemd runs, keep the packaged service off: it would listen on
  # :9090 and scrape on its own.
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
  [ -n "$(bin)" ] || die "prometheus is still not on PATH after apt-get install"
}

case "${1:-}" in
  install) install_prometheus ;;
  path) p=$(bin); [ -n "$p" ] || exit 1; echo "$p" ;;
  *) die "usage: $0 install|path" ;;
esac
