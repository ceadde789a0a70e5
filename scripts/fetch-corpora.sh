#!/usr/bin/env bash
# Downloads the public corpora that the user-agent and bot tests measure with
# (tests/tests/corpora.rs), from package registries, into DIR (default
# target/test-tools/corpora). None of them is kept in the repository:
# - Matomo device-detector's test fixtures (LGPL-3.0), from PyPI `device-detector` 6.5.1:
#   about 34,000 browser user-agents labelled with browser, OS and device type, and 1,347 bots;
# - npm `user-agents` 2.1.198 (Intoli, BSD-2-Clause): user-agents of real visits with the
#   navigator's own platform and device category, and each one's share of traffic;
# - the `isbot` crate 0.1.3 (MIT), from crates.io: its fixtures/bots.txt, 4,353 crawler
#   user-agents, a held-out check (the lists were never tuned on it).
# Usage: scripts/fetch-corpora.sh [DIR]
set -euo pipefail
dir=${1:-target/test-tools/corpora}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
[ -f "$dir/ready" ] && exit 0
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if ! "$dir/venv/bin/python" -c 'import yaml' 2>/dev/null; then
  python3 -m venv "$dir/venv"
  "$dir/venv/bin/pip" install -q pyyaml
fi
"$dir/venv/bin/pip" download -q --no-deps --only-binary=:all: -d "$tmp" device-detector==6.5.1
"$dir/venv/bin/python" "$here/matomo_fixtures.py" "$tmp"/device_detector-6.5.1-*.whl "$dir"

(cd "$tmp" && npm pack -s user-agents@2.1.198 >/dev/null)
tar -xzOf "$tmp"/user-agents-2.1.198.tgz package/dist/user-agents.json > "$dir/intoli-user-agents.json"

python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' \
  https://static.crates.io/crates/isbot/isbot-0.1.3.crate "$tmp/isbot.crate"
tar -xzOf "$tmp/isbot.crate" isbot-0.1.3/fixtures/bots.txt > "$dir/isbot-bots.txt"

touch "$dir/ready"
echo "corpora in $dir"
