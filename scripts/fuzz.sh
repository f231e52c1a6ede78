#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets, one per parser of outside input; see
# src/fuzzing.rs) for SECONDS each, on all cores in parallel, under AddressSanitizer with
# libFuzzer's memory and time limits:
#
#   scripts/fuzz.sh SECONDS [TARGET...]
#
# Each target starts from its committed seeds (fuzz/seeds/<target>) and the inputs that once
# failed (fuzz/regressions/<target>); what it learns goes to target/fuzz-runs/corpus/<target>
# (kept between runs, never committed). A crash, an out-of-memory (RSS over 2 GiB or one
# allocation over 1 GiB) or a timeout (one input over 10 s) leaves the input in
# target/fuzz-runs/artifacts/<target>/ and makes the script fail; fix the fault, then copy the
# input to fuzz/regressions/<target>/ so the test suite replays it for good
# (tests/integration/fuzz_corpus.rs). Built in release with debug assertions (overflow checks
# on). Prints executions per target. Needs cargo-fuzz (installed
# here if missing) and accepts the stable toolchain's nightly flags via RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:?usage: scripts/fuzz.sh SECONDS [TARGET...]}
shift
case $secs in '' | *[!0-9]*) echo "fuzz.sh: SECONDS must be a whole number, got $secs" >&2; exit 2 ;; esac

if ! command -v cargo-fuzz >/dev/null; then
  echo "fuzz.sh: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked --version 0.13.2 --quiet
fi
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O --debug-assertions --fuzz-dir fuzz >&2

if [ $# -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz); fi
bin_dir=fuzz/target/x86_64-unknown-linux-gnu/release
out=target/fuzz-runs
rm -rf "$out/artifacts"
mkdir -p "$out"

run_one() {
  local t=$1 secs=$2 bin_dir=$3 out=$4
  local dirs=("$out/corpus/$t" "fuzz/seeds/$t")
  [ -d "fuzz/regressions/$t" ] && dirs+=("fuzz/regressions/$t")
  mkdir -p "$out/corpus/$t" "$out/artifacts/$t"
  local rc=0
  "$bin_dir/$t" "${dirs[@]}" -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=1024 \
    -timeout=10 -artifact_prefix="$out/artifacts/$t/" -print_final_stats=1 \
    >"$out/$t.log" 2>&1 || rc=$?
  echo "$rc" >"$out/$t.rc"
}
export -f run_one
printf '%s\n' "${targets[@]}" | xargs -P "$(nproc)" -I{} bash -c 'run_one "$@"' _ {} "$secs" "$bin_dir" "$out"

failed=0
printf '%-14s %12s %10s  %s\n' target executions corpus result
for t in "${targets[@]}"; do
  rc=$(cat "$out/$t.rc" 2>/dev/null || echo missing)
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out/$t.log" | grep -o '[0-9]*$' | tail -1)
  corpus=$(find "$out/corpus/$t" -type f | wc -l)
  found=$(find "$out/artifacts/$t" -type f | wc -l)
  if [ "$rc" = 0 ] && [ "$found" = 0 ]; then
    result=ok
  else
    result="FAILED (exit $rc; $found input(s) in $out/artifacts/$t; log $out/$t.log)"
    failed=1
  fi
  printf '%-14s %12s %10s  %s\n' "$t" "${execs:-?}" "$corpus" "$result"
done
if [ "$failed" = 1 ]; then
  grep -h -A12 'ERROR: libFuzzer\|ERROR: AddressSanitizer\|panicked at' "$out"/*.log | head -80 >&2 || true
  exit 1
fi
echo "fuzz.sh: ${#targets[@]} targets, ${secs} s each: no crash, out-of-memory or timeout"
