#!/usr/bin/env bash
# A throw-away ClickHouse cluster on loopback for the cluster tests: Debian's zookeeper
# (started by hand, without its init scripts) and four clickhouse-server processes, two shards
# of two replicas, in a cluster named `footfall`. Installs the Debian packages if missing.
# Prints the four nodes' HTTP URLs, comma-separated, as "export FOOTFALL_TEST_CLUSTER_URLS=…".
# Usage: scripts/clickhouse-test-cluster.sh start DIR | stop DIR
#        scripts/clickhouse-test-cluster.sh stop-node DIR N | start-node DIR N   (N = 1…4)
#        scripts/clickhouse-test-cluster.sh stop-zookeeper DIR | drop-macros|restore-macros DIR N
set -euo pipefail
cmd=${1:?start|stop|stop-node|start-node}; dir=${2:?cluster dir}
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1]);s.close()'; }
# N distinct free ports: all held open until every one is chosen, so no two nodes get the
# same port (one at a time, a port just released can come back, and a node then fails to
# start while another answers on its HTTP port).
free_ports() { python3 -c 'import socket,sys;ss=[socket.socket() for _ in range(int(sys.argv[1]))];[s.bind(("127.0.0.1",0)) for s in ss];print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"; }
install() {
  local missing=()
  command -v clickhouse-server >/dev/null || missing+=(clickhouse-server clickhouse-client)
  [ -f /usr/share/java/zookeeper.jar ] || missing+=(zookeeper)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} from Debian" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
  fi
}
wait_http() { # url what
  for _ in $(seq 1 600); do
    curl -fsS "$1/ping" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "$2 did not start" >&2; return 1
}
start_node() { # n
  local n=$1 d="$dir/node$1"
  clickhouse-server --config-file="$d/config.xml" > "$d/log/stdout.log" 2>&1 &
  echo $! > "$d/pid"
}
stop_pid() { # pidfile
  local pid; pid=$(cat "$1" 2>/dev/null || true)
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null || true
}
case "$cmd" in
start)
  install
  mkdir -p "$dir/zk/data"
  zk=$(free_port)
  # A test coordinator need not survive a power loss: without an fsync per write
  # (forceSync=no), replicated DDL and replica syncs do not wait on a slow disk.
  cat > "$dir/zk/zoo.cfg" <<CFG
tickTime=500
initLimit=10
syncLimit=5
dataDir=$dir/zk/data
clientPort=$zk
clientPortAddress=127.0.0.1
admin.enableServer=false
maxClientCnxns=0
forceSync=no
CFG
  java -Xmx256m -Dzookeeper.log.dir="$dir/zk" -cp "/usr/share/java/*:/etc/zookeeper/conf_example" \
    org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zk/zoo.cfg" > "$dir/zk/stdout.log" 2>&1 &
  echo $! > "$dir/zk/pid"
  declare -a http tcp inter
  read -r -a ports <<< "$(free_ports 12)"
  for n in 1 2 3 4; do
    http[$n]=${ports[$(( (n - 1) * 3 ))]}; tcp[$n]=${ports[$(( (n - 1) * 3 + 1 ))]}; inter[$n]=${ports[$(( (n - 1) * 3 + 2 ))]}
  done
  replica() { # n → shard replica
    echo "$(( ($1 + 1) / 2 )) $(( ($1 + 1) % 2 + 1 ))"
  }
  servers=""
  for s in 1 2; do
    servers+="<shard><internal_replication>true</internal_replication>"
    for r in 1 2; do
      n=$(( (s - 1) * 2 + r ))
      servers+="<replica><host>127.0.0.1</host><port>${tcp[$n]}</port></replica>"
    done
    servers+="</shard>"
  done
  for n in 1 2 3 4; do
    d="$dir/node$n"
    mkdir -p "$d/data" "$d/tmp" "$d/log" "$d/user_files" "$d/format_schemas"
    read -r shard rep < <(replica "$n")
    cat > "$d/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>$d/log/server.log</log><errorlog>$d/log/error.log</errorlog><size>10M</size><count>2</count></logger>
  <listen_host>127.0.0.1</listen_host>
  <interserver_http_host>127.0.0.1</interserver_http_host>
  <http_port>${http[$n]}</http_port>
  <tcp_port>${tcp[$n]}</tcp_port>
  <interserver_http_port>${inter[$n]}</interserver_http_port>
  <path>$d/data/</path>
  <tmp_path>$d/tmp/</tmp_path>
  <user_files_path>$d/user_files/</user_files_path>
  <format_schema_path>$d/format_schemas/</format_schema_path>
  <users_config>$d/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>104857600</mark_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
  <timezone>UTC</timezone>
  <remote_servers><footfall>$servers</footfall></remote_servers>
  <zookeeper><node><host>127.0.0.1</host><port>$zk</port></node><session_timeout_ms>6000</session_timeout_ms></zookeeper>
  <macros><shard>$shard</shard><replica>s${shard}r${rep}</replica></macros>
  <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>
</yandex>
XML
    cat > "$d/users.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>1000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
XML
    echo "${http[$n]}" > "$d/http_port"
  done
  # ZooKeeper answers "imok" to ruok once it serves (4-letter words are on for ruok).
  for _ in $(seq 1 150); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$zk" && printf 'ruok' >&3 && timeout 1 cat <&3) 2>/dev/null | grep -q imok; then break; fi
    sleep 0.2
  done
  urls=()
  for n in 1 2 3 4; do start_node "$n"; done
  for n in 1 2 3 4; do
    wait_http "http://127.0.0.1:${http[$n]}" "clickhouse node $n" || { tail -n 20 "$dir/node$n/log/"*.log >&2; exit 1; }
    urls+=("http://127.0.0.1:${http[$n]}")
  done
  (IFS=,; echo "${urls[*]}" > "$dir/urls"; echo "export FOOTFALL_TEST_CLUSTER_URLS=${urls[*]}")
  ;;
stop)
  for n in 1 2 3 4; do stop_pid "$dir/node$n/pid"; done
  stop_pid "$dir/zk/pid" ;;
stop-node) stop_pid "$dir/node${3:?node}/pid" ;;
start-node)
  n=${3:?node}
  start_node "$n"
  wait_http "http://127.0.0.1:$(cat "$dir/node$n/http_port")" "clickhouse node $n" ;;
stop-zookeeper) stop_pid "$dir/zk/pid" ;;
drop-macros | restore-macros)
  # Restarts node N without its <macros>, as a misconfigured node would be, or with them
  # again. (A node whose replicated tables exist does not start without its macros.)
  n=${3:?node}
  stop_pid "$dir/node$n/pid"
  if [ "$cmd" = drop-macros ]; then
    cp "$dir/node$n/config.xml" "$dir/node$n/config.xml.orig"
    sed -i '/<macros>/d' "$dir/node$n/config.xml"
  else
    mv "$dir/node$n/config.xml.orig" "$dir/node$n/config.xml"
  fi
  start_node "$n"
  wait_http "http://127.0.0.1:$(cat "$dir/node$n/http_port")" "clickhouse node $n" ;;
*) echo "usage: $0 start|stop DIR | stop-node|start-node|drop-macros|restore-macros DIR N | stop-zookeeper DIR" >&2; exit 2 ;;
esac
