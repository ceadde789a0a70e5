#!/usr/bin/env bash
# Short cargo fuzz runs of every target in fuzz/ (FUZZ_SECONDS each, default 10), starting
# from the seeds in fuzz/seeds/<target>. New inputs go to a throw-away corpus; a crash leaves
# its input in fuzz/artifacts/<target>/ and fails the script.
#   scripts/fuzz.sh [target…]        e.g. FUZZ_SECONDS=600 scripts/fuzz.sh event_body
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${FUZZ_SECONDS:-10}
case "$seconds" in '' | *[!0-9]*) echo "FUZZ_SECONDS must be a whole number" >&2; exit 2 ;; esac
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
# cargo fuzz passes unstable flags; the machine's one toolchain is stable.
export RUSTC_BOOTSTRAP=1
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
cargo fuzz build --dev -s none 2>&1 | tail -1
for t in "${targets[@]}"; do
  mkdir -p "$corpus/$t"
  printf '%-14s ' "$t"
  cargo fuzz run --dev -s none "$t" "$corpus/$t" "seeds/$t" -- \
    -max_total_time="$seconds" -max_len=8192 -print_final_stats=1 2>&1 |
    grep -E '^(stat::number_of_executed_units|Done)|panicked|ERROR|SUMMARY' | tr '\n' ' '
  echo
done
