#!/usr/bin/env bash
# The project's one test command (README "Run every test"; .ci/run calls exactly this).
# It installs and starts whatever the tests need, then runs every test of the workspace.
# Today the tests need only the Rust toolchain and ../shared/datasets (the NAB corpus);
# broker tests (MQTT, Kafka) will add their setup here, and fail loudly if it cannot run.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "test.sh: cargo is not installed" >&2; exit 1; }
if [ ! -d ../shared/datasets/nab/data ]; then
  echo "test.sh: the NAB corpus is expected at ../shared/datasets/nab (see datasets/README.md)" >&2
  exit 1
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace
