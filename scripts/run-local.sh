#!/usr/bin/env bash
# Runs Footfall on this machine: a local ClickHouse (Debian's package, installed if missing)
# with its data in ./data/clickhouse, and `footfall serve` on 127.0.0.1:8000 in front of it.
# Ctrl-C stops both. Add a site first with: scripts/run-local.sh site add example.com
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p data
chdir="$(pwd)/data/clickhouse"
eval "$(scripts/clickhouse-test-server.sh start "$chdir")"
trap 'scripts/clickhouse-test-server.sh stop "$chdir"' EXIT
export FOOTFALL_CLICKHOUSE_URL="$FOOTFALL_TEST_CLICKHOUSE_URL"
cargo build --release --bin footfall
if [ $# -gt 0 ]; then
  target/release/footfall "$@"
else
  target/release/footfall serve
fi
