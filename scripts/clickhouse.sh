#!/usr/bin/env bash
# Start, stop or query a private ClickHouse server that runs as a plain process
# with its own data directory and free loopback ports.
#
#   scripts/clickhouse.sh install          install Debian's clickhouse-server if missing
#   scripts/clickhouse.sh start DIR        start a server in DIR, print HOLDFAST_CLICKHOUSE=host:port
#   scripts/clickhouse.sh stop DIR         stop the server started in DIR
#   scripts/clickhouse.sh status DIR       exit 0 and print the address if it answers SELECT 1
#   scripts/clickhouse.sh addr DIR         print host:port of the server in DIR
#
# The server listens on 127.0.0.1 only. Its log is DIR/log/clickhouse-server.log.
set -euo pipefail

die() { echo "clickhouse.sh: $*" >&2; exit 1; }

server_bin() {
  command -v clickhouse-server 2>/dev/null || { [ -x /usr/bin/clickhouse-server ] && echo /usr/bin/clickhouse-server; } || true
}

install_server() {
  if [ -n "$(server_bin)" ] && command -v clickhouse-client >/dev/null; then return 0; fi
  echo "clickhouse.sh: installing Debian's clickhouse-server" >&2
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq clickhouse-server clickhouse-client >&2
  [ -n "$(server_bin)" ] || die "clickhouse-server is still not on PATH after apt-get install"
  command -v clickhouse-client >/dev/null || die "clickhouse-client is still not on PATH after apt-get install"
}

free_port() {
  # Ask the kernel for a free port by binding port 0.
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()' 2>/dev/null ||
    echo $((20000 + RANDOM % 20000))
}

ping_native() {
  # clickhouse-client may be absent; the HTTP port answers /ping on every version.
  local http_port=$1
  curl -fsS --max-time 2 "http://127.0.0.1:${http_port}/ping" >/dev/null 2>&1
}

start() {
  local dir=$1
  install_server
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
    echo "HOLDFAST_CLICKHOUSE=$(cat "$dir/addr")"
    return 0
  fi
  if [ -f "$dir/config.xml" ] && [ -f "$dir/addr" ]; then
    # A restart keeps the data and the ports, so clients reconnect.
    launch "$dir"
    return
  fi
  local tcp_port http_port interserver_port
  tcp_port=$(free_port); http_port=$(free_port); interserver_port=$(free_port)
  mkdir -p "$dir/data" "$dir/tmp" "$dir/log" "$dir/user_files" "$dir/format_schemas"
  local template=/etc/clickhouse-server/config.xml
  [ -f "$template" ] || die "missing $template (is clickhouse-server installed?)"
  # Rewrite the packaged config: private paths, free ports, loopback only.
  sed -e "s#<path>.*</path>#<path>$dir/data/</path>#" \
      -e "s#<tmp_path>.*</tmp_path>#<tmp_path>$dir/tmp/</tmp_path>#" \
      -e "s#<user_files_path>.*</user_files_path>#<user_files_path>$dir/user_files/</user_files_path>#" \
      -e "s#<format_schema_path>.*</format_schema_path>#<format_schema_path>$dir/format_schemas/</format_schema_path>#" \
      -e "s#<log>.*</log>#<log>$dir/log/clickhouse-server.log</log>#" \
      -e "s#<errorlog>.*</errorlog>#<errorlog>$dir/log/clickhouse-server.err.log</errorlog>#" \
      -e "s#<tcp_port>.*</tcp_port>#<tcp_port>$tcp_port</tcp_port>#" \
      -e "s#<http_port>.*</http_port>#<http_port>$http_port</http_port>#" \
      -e "s#<interserver_http_port>.*</interserver_http_port>#<interserver_http_port>$interserver_port</interserver_http_port>#" \
      -e "s#<level>trace</level>#<level>information</level>#" \
      -e "s#<users_config>.*</users_config>#<users_config>$dir/users.xml</users_config>#" \
      -e "s#<listen_host>::</listen_host>##" \
      "$template" > "$dir/config.xml"
  # Remove any listen_host lines and pin loopback; drop the include of /etc/metrika.xml.
  sed -i -e '/<listen_host>/d' -e "s#</yandex>#    <listen_host>127.0.0.1</listen_host>\n</yandex>#" "$dir/config.xml"
  cp /etc/clickhouse-server/users.xml "$dir/users.xml"
  echo "127.0.0.1:$tcp_port" > "$dir/addr"
  echo "$http_port" > "$dir/http_port"
  launch "$dir"
}

launch() {
  local dir=$1 http_port
  http_port=$(cat "$dir/http_port")
  # Background the server itself (not a subshell) so $! is its pid.
  (cd "$dir" || exit 1
   nohup "$(server_bin)" --config-file="$dir/config.xml" </dev/null >"$dir/log/stdout.log" 2>&1 &
   echo $! > "$dir/pid")
  local i
  for i in $(seq 1 120); do
    if ping_native "$http_port"; then
      echo "HOLDFAST_CLICKHOUSE=$(cat "$dir/addr")"
      return 0
    fi
    if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
      tail -n 30 "$dir/log/stdout.log" "$dir/log/clickhouse-server.err.log" >&2 2>/dev/null || true
      die "server exited during start-up; see $dir/log"
    fi
    sleep 0.5
  done
  die "server did not answer within 60 s; see $dir/log"
}

stop() {
  local dir=$1 pid i
  [ -d "$dir" ] || return 0
  dir=$(cd "$dir" && pwd)
  # The pid file, and as a fallback any server started with this config.
  local pids
  pids="$(cat "$dir/pid" 2>/dev/null || true) $(pgrep -f -- "--config-file=$dir/config.xml" || true)"
  for pid in $pids; do kill "$pid" 2>/dev/null || true; done
  for i in $(seq 1 60); do
    local alive=""
    for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ -z "$alive" ] && break
    sleep 0.5
  done
  for pid in $pids; do kill -9 "$pid" 2>/dev/null || true; done
  rm -f "$dir/pid"
}

status() {
  local dir=$1
  [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null && ping_native "$(cat "$dir/http_port")" || { echo "not running"; return 1; }
  cat "$dir/addr"
}

cmd=${1:-}; shift || true
case "$cmd" in
  install) install_server ;;
  start) [ $# -eq 1 ] || die "usage: $0 start DIR"; start "$1" ;;
  stop) [ $# -eq 1 ] || die "usage: $0 stop DIR"; stop "$1" ;;
  status) [ $# -eq 1 ] || die "usage: $0 status DIR"; status "$1" ;;
  addr) [ $# -eq 1 ] || die "usage: $0 addr DIR"; cat "$1/addr" ;;
  *) die "usage: $0 install|start DIR|stop DIR|status DIR|addr DIR" ;;
esac
