#!/usr/bin/env bash
# Starts a throw-away ClickHouse server (Debian's clickhouse-server) on a free loopback port
# with its own data directory, installing Debian's package first if it is missing.
# Prints "export FOOTFALL_TEST_CLICKHOUSE_URL=...". Starting again with the same DIR reuses
# its ports and data (tests stop and restart a server this way).
# Usage: scripts/clickhouse-test-server.sh start DIR | stop DIR
set -euo pipefail
cmd=${1:?start|stop}; dir=${2:?data dir}
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1]);s.close()'; }
case "$cmd" in
start)
  if ! command -v clickhouse-server >/dev/null; then
    echo "installing clickhouse-server from Debian" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clickhouse-server clickhouse-client >&2
  fi
  mkdir -p "$dir/data" "$dir/tmp" "$dir/log" "$dir/user_files" "$dir/format_schemas"
  if [ -f "$dir/ports" ]; then
    # A restart keeps the ports and the data of the earlier start.
    read -r http tcp < "$dir/ports"
  else
    http=$(free_port); tcp=$(free_port)
    echo "$http $tcp" > "$dir/ports"
  fi
  cat > "$dir/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>$dir/log/server.log</log><errorlog>$dir/log/error.log</errorlog><size>10M</size><count>2</count></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>$http</http_port>
  <tcp_port>$tcp</tcp_port>
  <path>$dir/data/</path>
  <tmp_path>$dir/tmp/</tmp_path>
  <user_files_path>$dir/user_files/</user_files_path>
  <format_schema_path>$dir/format_schemas/</format_schema_path>
  <users_config>$dir/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>104857600</mark_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
  <timezone>UTC</timezone>
</yandex>
XML
  cat > "$dir/users.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
XML
  clickhouse-server --config-file="$dir/config.xml" > "$dir/log/stdout.log" 2>&1 &
  echo $! > "$dir/pid"
  # Up to two minutes: a server starting while other tests load both cores can take a while.
  for _ in $(seq 1 600); do
    if curl -fsS "http://127.0.0.1:$http/ping" >/dev/null 2>&1; then
      echo "$http" > "$dir/http_port"
      echo "export FOOTFALL_TEST_CLICKHOUSE_URL=http://127.0.0.1:$http"
      exit 0
    fi
    sleep 0.2
  done
  echo "clickhouse-server did not start; log:" >&2; tail -n 20 "$dir/log/"*.log >&2; exit 1 ;;
stop)
  pid=$(cat "$dir/pid" 2>/dev/null || true)
  [ -n "$pid" ] || exit 0
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null || true ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
