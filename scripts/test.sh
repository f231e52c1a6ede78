#!/usr/bin/env bash
# The project's one test command (README "Run every test"; .ci/run calls exactly this).
# It installs and starts whatever the tests need, then runs every test of the workspace.
# The tests need the Rust toolchain, ../shared/datasets (the NAB corpus), headless Chromium
# with chromedriver (installed from apt if missing), and two real brokers:
# Mosquitto and tansu (Kafka protocol), which scripts/brokers.sh installs, starts on free
# loopback ports and stops on exit. Broker tests fail (not skip) if the brokers are missing.
# The 3-host cluster test needs root (network namespaces) and iproute2; the fuzz targets are
# built with cargo-fuzz (installed if missing) under AddressSanitizer; tansu with SQLite
# storage (for the broker-restart test) is built from crates.io once, by scripts/brokers.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "test.sh: cargo is not installed" >&2; exit 1; }
# A clean build of the workspace and its tests needs a few GiB; say so up front rather than
# failing deep inside a C build with "No space left on device".
avail_kib=$(df -Pk . | awk 'NR==2 {print $4}')
if [ "${avail_kib:-0}" -lt 6000000 ]; then
  echo "test.sh: only $((avail_kib / 1024)) MiB free here; the build and tests need about 6 GiB" >&2
fi
# The NAB corpus (read-only, never copied here): $SENSORFLOW_NAB_DIR, else beside the checkout.
if [ -z "${SENSORFLOW_NAB_DIR:-}" ] && [ -d ../shared/datasets/nab/data ]; then
  export SENSORFLOW_NAB_DIR="$(cd ../shared/datasets/nab && pwd)"
fi
if [ ! -d "${SENSORFLOW_NAB_DIR:-/nonexistent}/data" ]; then
  echo "test.sh: the NAB corpus was not found (../shared/datasets/nab; set SENSORFLOW_NAB_DIR)" >&2
  exit 1
fi

# Headless Chromium and its WebDriver for the dashboard test (tests/integration/dashboard.rs).
if ! command -v chromedriver >/dev/null || ! { command -v chromium >/dev/null || command -v chromium-browser >/dev/null; }; then
  echo "test.sh: installing chromium and chromium-driver (apt)" >&2
  if [ "$(id -u)" = 0 ]; then APT=apt-get; else APT="sudo apt-get"; fi
  $APT install -y -q --no-install-recommends chromium chromium-driver >/dev/null 2>&1 \
    || { $APT update -q >/dev/null && $APT install -y -q --no-install-recommends chromium chromium-driver >/dev/null; }
fi

# iproute2 for the 3-host cluster test (network namespaces; needs root).
if ! command -v ip >/dev/null; then
  echo "test.sh: installing iproute2 (apt)" >&2
  if [ "$(id -u)" = 0 ]; then APT=apt-get; else APT="sudo apt-get"; fi
  $APT install -y -q iproute2 >/dev/null 2>&1 || { $APT update -q >/dev/null && $APT install -y -q iproute2 >/dev/null; }
fi

# Real brokers for the connector tests (exports SENSORFLOW_MQTT and SENSORFLOW_KAFKA).
source scripts/brokers.sh

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace
# Every fuzz target for a few seconds (scripts/fuzz.sh SECONDS runs them for as long as asked);
# their seeds and past failures are also replayed by `cargo test` (fuzz_corpus).
scripts/fuzz.sh 5
