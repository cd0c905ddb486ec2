#!/usr/bin/env bash
# Start, stop, kill or restart a private ClickHouse 18.16 cluster on this
# machine: one ZooKeeper 3.8 (Debian's zookeeper package, run as a plain java
# process) and four ClickHouse servers on free loopback ports, arranged as
# 2 shards x 2 replicas in one <remote_servers> cluster named "holdfast".
#
#   scripts/chcluster.sh install          install Debian's zookeeper (and ClickHouse) if missing
#   scripts/chcluster.sh start DIR        start (or resume) the cluster in DIR; prints
#                                         HOLDFAST_CLICKHOUSE_CLUSTER=a1,a2,a3,a4
#                                         HOLDFAST_CLICKHOUSE_CLUSTER_NAME=holdfast
#                                         HOLDFAST_CLICKHOUSE_CLUSTER_DIR=DIR
#   scripts/chcluster.sh stop DIR         stop every process of the cluster in DIR
#   scripts/chcluster.sh kill DIR N       SIGKILL replica N (1..4)
#   scripts/chcluster.sh restart DIR N    start replica N again, same ports and data
#   scripts/chcluster.sh status DIR       print the addresses of the replicas that answer
#
# Replica N is shard (N+1)/2, replica name chN: 1 and 2 are shard 1, 3 and 4
# shard 2. Addresses are listed in that order. Logs are in DIR/chN/log and
# DIR/zk/zookeeper.log.
set -euo pipefail

die() { echo "chcluster.sh: $*" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
cluster_name=holdfast
replicas=4

zk_classpath() {
  # zookeeper.jar's manifest names its dependencies; the two log jars give it a log.
  echo "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar"
}

install_all() {
  "$here/clickhouse.sh" install
  if [ -f /usr/share/java/zookeeper.jar ] && command -v java >/dev/null; then return 0; fi
  echo "chcluster.sh: installing Debian's zookeeper" >&2
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq zookeeper >&2 ||
    { $sudo apt-get update -qq >&2; DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq zookeeper >&2; }
  [ -f /usr/share/java/zookeeper.jar ] || die "zookeeper.jar is still missing after apt-get install zookeeper"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()' 2>/dev/null ||
    echo $((20000 + RANDOM % 20000))
}

server_bin() {
  command -v clickhouse-server 2>/dev/null || echo /usr/bin/clickhouse-server
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

zk_ok() {
  # ruok is whitelisted in zoo.cfg; imok means it serves.
  [ "$(python3 - "$1" <<'EOF' 2>/dev/null
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
s.sendall(b"ruok"); print(s.recv(16).decode()); s.close()
EOF
)" = imok ]
}

configure() {
  local dir=$1 i zk_port
  mkdir -p "$dir/zk/data"
  zk_port=$(free_port)
  echo "$zk_port" > "$dir/zk/port"
  cat > "$dir/zk/zoo.cfg" <<EOF
tickTime=2000
dataDir=$dir/zk/data
clientPort=$zk_port
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=ruok,stat,mntr
autopurge.snapRetainCount=3
autopurge.purgeInterval=1
EOF
  cat > "$dir/zk/log4j.properties" <<EOF
log4j.rootLogger=INFO, FILE
log4j.appender.FILE=org.apache.log4j.FileAppender
log4j.appender.FILE.File=$dir/zk/zookeeper.log
log4j.appender.FILE.layout=org.apache.log4j.PatternLayout
log4j.appender.FILE.layout.ConversionPattern=%d{ISO8601} %-5p [%t] %c{1}: %m%n
EOF
  # Ports first: every server's config names all four.
  for i in $(seq 1 $replicas); do
    mkdir -p "$dir/ch$i"/{data,tmp,log,user_files,format_schemas}
    echo "$(free_port) $(free_port) $(free_port)" > "$dir/ch$i/ports"
  done
  local remote="    <remote_servers>\n        <$cluster_name>\n"
  for shard in 1 2; do
    remote+="            <shard>\n                <internal_replication>true</internal_replication>\n"
    for i in $(( shard*2-1 )) $(( shard*2 )); do
      remote+="                <replica><host>127.0.0.1</host><port>$(cut -d' ' -f1 "$dir/ch$i/ports")</port></replica>\n"
    done
    remote+="            </shard>\n"
  done
  remote+="        </$cluster_name>\n    </remote_servers>\n"
  local template=/etc/clickhouse-server/config.xml
  [ -f "$template" ] || die "missing $template (is clickhouse-server installed?)"
  for i in $(seq 1 $replicas); do
    local d="$dir/ch$i" tcp http inter
    read -r tcp http inter < "$d/ports"
    local extra="$remote"
    extra+="    <zookeeper>\n        <node><host>127.0.0.1</host><port>$zk_port</port></node>\n        <session_timeout_ms>15000</session_timeout_ms>\n    </zookeeper>\n"
    extra+="    <macros>\n        <cluster>$cluster_name</cluster>\n        <shard>$(( (i+1)/2 ))</shard>\n        <replica>ch$i</replica>\n    </macros>\n"
    extra+="    <listen_host>127.0.0.1</listen_host>\n"
    # The packaged config: private paths and ports (as scripts/clickhouse.sh),
    # replicas fetch parts from 127.0.0.1 (not `hostname -f`), and the
    # incl= placeholders for /etc/metrika.xml replaced by the inline blocks.
    # Only the first <path>: the second is distributed_ddl's ZooKeeper path.
    sed -e "0,/<path>/s#<path>.*</path>#<path>$d/data/</path>#" \
        -e "s#<tmp_path>.*</tmp_path>#<tmp_path>$d/tmp/</tmp_path>#" \
        -e "s#<user_files_path>.*</user_files_path>#<user_files_path>$d/user_files/</user_files_path>#" \
        -e "s#<format_schema_path>.*</format_schema_path>#<format_schema_path>$d/format_schemas/</format_schema_path>#" \
        -e "s#<log>.*</log>#<log>$d/log/clickhouse-server.log</log>#" \
        -e "s#<errorlog>.*</errorlog>#<errorlog>$d/log/clickhouse-server.err.log</errorlog>#" \
        -e "s#<tcp_port>.*</tcp_port>#<tcp_port>$tcp</tcp_port>#" \
        -e "s#<http_port>.*</http_port>#<http_port>$http</http_port>#" \
        -e "s#<interserver_http_port>.*</interserver_http_port>#<interserver_http_port>$inter</interserver_http_port>#" \
        -e "s#<interserver_http_host>.*</interserver_http_host>#<interserver_http_host>127.0.0.1</interserver_http_host>#" \
        -e "s#<level>trace</level>#<level>information</level>#" \
        -e "s#<users_config>.*</users_config>#<users_config>$d/users.xml</users_config>#" \
        -e '/<listen_host>/d' -e '/<zookeeper incl=/d' -e '/<macros incl=/d' \
        "$template" |
      perl -0pe 's#<remote_servers incl=.*?</remote_servers>\n##s' |
      perl -0pe "s#</yandex>#$extra</yandex>#" > "$d/config.xml"
    # poll_interval 1: a server's shutdown waits for idle queries' polls.
    sed -e 's#<load_balancing>random</load_balancing>#<load_balancing>random</load_balancing>\n            <poll_interval>1</poll_interval>#' \
      /etc/clickhouse-server/users.xml > "$d/users.xml"
    echo "127.0.0.1:$tcp" > "$d/addr"
  done
  echo "$cluster_name" > "$dir/cluster"
}

start_zk() {
  local dir=$1
  alive "$dir/zk/pid" && return 0
  (cd "$dir/zk" || exit 1
   nohup java -Xmx256m -Xms64m -Dlog4j.configuration="file:$dir/zk/log4j.properties" \
     -Dzookeeper.admin.enableServer=false -cp "$(zk_classpath)" \
     org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zk/zoo.cfg" </dev/null >"$dir/zk/stdout.log" 2>&1 &
   echo $! > "$dir/zk/pid")
}

wait_zk() {
  local dir=$1 i
  for i in $(seq 1 120); do
    zk_ok "$(cat "$dir/zk/port")" && return 0
    alive "$dir/zk/pid" || { tail -n 30 "$dir/zk/stdout.log" "$dir/zk/zookeeper.log" >&2 2>/dev/null; die "ZooKeeper exited during start-up; see $dir/zk"; }
    sleep 0.25
  done
  die "ZooKeeper did not answer ruok within 30 s; see $dir/zk"
}

start_ch() {
  local dir=$1 i=$2 d
  d="$dir/ch$i"
  alive "$d/pid" && return 0
  (cd "$d" || exit 1
   nohup "$(server_bin)" --config-file="$d/config.xml" </dev/null >>"$d/log/stdout.log" 2>&1 &
   echo $! > "$d/pid")
}

wait_ch() {
  local dir=$1 i=$2 d http n
  d="$dir/ch$i"
  http=$(cut -d' ' -f2 "$d/ports")
  for n in $(seq 1 240); do
    curl -fsS --max-time 2 "http://127.0.0.1:$http/ping" >/dev/null 2>&1 && return 0
    alive "$d/pid" || { tail -n 30 "$d/log/stdout.log" "$d/log/clickhouse-server.err.log" >&2 2>/dev/null; die "replica $i exited during start-up; see $d/log"; }
    sleep 0.25
  done
  die "replica $i did not answer within 60 s; see $d/log"
}

addrs() {
  local dir=$1 i out=""
  for i in $(seq 1 $replicas); do out+="${out:+,}$(cat "$dir/ch$i/addr")"; done
  echo "$out"
}

print_env() {
  echo "HOLDFAST_CLICKHOUSE_CLUSTER=$(addrs "$1")"
  echo "HOLDFAST_CLICKHOUSE_CLUSTER_NAME=$(cat "$1/cluster")"
  echo "HOLDFAST_CLICKHOUSE_CLUSTER_DIR=$1"
}

start() {
  local dir=$1 i
  install_all
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  # A second start resumes the same cluster (ports and data kept).
  [ -f "$dir/cluster" ] || configure "$dir"
  start_zk "$dir"
  wait_zk "$dir"
  for i in $(seq 1 $replicas); do start_ch "$dir" "$i"; done
  for i in $(seq 1 $replicas); do wait_ch "$dir" "$i"; done
  print_env "$dir"
}

stop_pid() {
  local pidfile=$1 pid n
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null || true
  for n in $(seq 1 80); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

stop() {
  local dir=$1 i
  [ -d "$dir" ] || return 0
  dir=$(cd "$dir" && pwd)
  for i in $(seq 1 $replicas); do stop_pid "$dir/ch$i/pid" & done
  wait
  stop_pid "$dir/zk/pid"
}

replica_arg() {
  [[ "$1" =~ ^[1-4]$ ]] || die "replica must be 1..4, not $1"
}

kill_replica() {
  local dir=$1 i=$2 pid
  replica_arg "$i"
  [ -f "$dir/ch$i/pid" ] || die "replica $i is not running"
  pid=$(cat "$dir/ch$i/pid")
  kill -9 "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  rm -f "$dir/ch$i/pid"
}

restart_replica() {
  local dir=$1 i=$2
  replica_arg "$i"
  dir=$(cd "$dir" && pwd)
  start_ch "$dir" "$i"
  wait_ch "$dir" "$i"
  cat "$dir/ch$i/addr"
}

status() {
  local dir=$1 i ok=0
  alive "$dir/zk/pid" && zk_ok "$(cat "$dir/zk/port")" && echo "zookeeper 127.0.0.1:$(cat "$dir/zk/port")" || { echo "zookeeper down"; ok=1; }
  for i in $(seq 1 $replicas); do
    if alive "$dir/ch$i/pid" && curl -fsS --max-time 2 "http://127.0.0.1:$(cut -d' ' -f2 "$dir/ch$i/ports")/ping" >/dev/null 2>&1; then
      echo "replica $i $(cat "$dir/ch$i/addr")"
    else
      echo "replica $i down"; ok=1
    fi
  done
  return $ok
}

cmd=${1:-}; shift || true
case "$cmd" in
  install) install_all ;;
  start) [ $# -eq 1 ] || die "usage: $0 start DIR"; start "$1" ;;
  stop) [ $# -eq 1 ] || die "usage: $0 stop DIR"; stop "$1" ;;
  kill) [ $# -eq 2 ] || die "usage: $0 kill DIR N"; kill_replica "$1" "$2" ;;
  restart) [ $# -eq 2 ] || die "usage: $0 restart DIR N"; restart_replica "$1" "$2" ;;
  status) [ $# -eq 1 ] || die "usage: $0 status DIR"; status "$1" ;;
  *) die "usage: $0 install|start DIR|stop DIR|kill DIR N|restart DIR N|status DIR" ;;
esac
