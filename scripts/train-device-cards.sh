#!/usr/bin/env bash
# Rebuilds the learned device models shipped in the binary (models/artifacts/devices/): for
# each rig shape of the benchmark, `sensorflow train --data` on the runs of the 8 design seeds
# (101-108; each run's `label` column leaves its faults out of training), at the rig's own
# row interval, and keeps the int8 student's card and weights plus the chain's report.
# Held-out seeds (9001-9016) are never read here. Takes about 3 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q --bin sensorflow
bin=target/release/sensorflow
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out=models/artifacts/devices
mkdir -p "$out"
declare -A interval=([pump]=1s [hvac]=60s [line]=5s [compressor]=10s)
for rig in pump hvac line compressor; do
  files=()
  for seed in 101 102 103 104 105 106 107 108; do
    "$bin" rig write --rig "$rig" --seed "$seed" -o "$work/$rig-$seed.csv" >/dev/null
    files+=("$work/$rig-$seed.csv")
  done
  "$bin" train --data "${files[@]}" --interval "${interval[$rig]}" --dir "$work/cards" --name "$rig"
  cp "$work/cards/$rig-student-int8.json" "$work/cards/$rig-student-int8.bpk" "$work/cards/$rig-report.json" "$out/"
done
