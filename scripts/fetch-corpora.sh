#!/usr/bin/env bash
# Downloads the public corpora that the user-agent and bot tests measure with
# (tests/tests/corpora.rs), from package registries, into DIR (default
# target/test-tools/corpora). None of them is kept in the repository:
# - Matomo device-detector's test fixtures (LGPL-3.0), from PyPI `device-detector` 6.5.1:
#   about 34,000 browser user-agents labelled with browser, OS and device type, and 1,347 bots;
# - npm `user-agents` 2.1.198 (Intoli, BSD-2-Clause): user-agents of real visits with the
#   navigator's own platform and device category, and each one's share of traffic;
# - the `isbot` crate 0.1.3 (MIT), from crates.io: its fixtures/bots.txt, 4,353 crawler
#   user-agents, a held-out check (the lists were never tuned on it);
# - the `rhit` crate 2.0.4 (MIT, Denys Séguret), from crates.io: test-data/access.log, a real
#   nginx combined log of one day (22 January 2021, 33,469 lines, IPv4 and IPv6, anonymised
#   with Anolog), counted independently by scripts/count_access_log.py, which tells bots with
#   Matomo's device-detector from PyPI (LGPL-3.0).
# Usage: scripts/fetch-corpora.sh [DIR]
set -euo pipefail
dir=${1:-target/test-tools/corpora}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
[ -f "$dir/ready.2" ] && exit 0
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if ! "$dir/venv/bin/python" -c 'import yaml, device_detector' 2>/dev/null; then
  python3 -m venv "$dir/venv"
  "$dir/venv/bin/pip" install -q pyyaml device-detector==6.5.1
fi
"$dir/venv/bin/pip" download -q --no-deps --only-binary=:all: -d "$tmp" device-detector==6.5.1
"$dir/venv/bin/python" "$here/matomo_fixtures.py" "$tmp"/device_detector-6.5.1-*.whl "$dir"

(cd "$tmp" && npm pack -s user-agents@2.1.198 >/dev/null)
tar -xzOf "$tmp"/user-agents-2.1.198.tgz package/dist/user-agents.json > "$dir/intoli-user-agents.json"

python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' \
  https://static.crates.io/crates/isbot/isbot-0.1.3.crate "$tmp/isbot.crate"
tar -xzOf "$tmp/isbot.crate" isbot-0.1.3/fixtures/bots.txt > "$dir/isbot-bots.txt"

python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' \
  https://static.crates.io/crates/rhit/rhit-2.0.4.crate "$tmp/rhit.crate"
echo "f85be51bd4d912cf3bed8b369a95cfbde4402775f3a817f9fe7b92b55e4dc0c2  $tmp/rhit.crate" | sha256sum -c --quiet
tar -xzOf "$tmp/rhit.crate" rhit-2.0.4/test-data/access.log > "$dir/rhit-access.log"
tar -xzOf "$tmp/rhit.crate" rhit-2.0.4/LICENSE > "$dir/rhit-LICENSE"
# The figures the import must give, counted without Footfall (the excludes are the test's).
"$dir/venv/bin/python" "$here/count_access_log.py" "$dir/rhit-access.log" '/gogo/*' '/json/*' \
  > "$dir/rhit-counts.json"

touch "$dir/ready" "$dir/ready.2"
echo "corpora in $dir"
