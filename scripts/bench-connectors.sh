#!/usr/bin/env bash
# MQTT → bridge → Kafka → engine at a fixed offered rate (SF_RATE events/s, default 50000;
# SF_SECS seconds, default 30). Starts Mosquitto and tansu like the tests do.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/brokers.sh
cargo bench --bench connectors
