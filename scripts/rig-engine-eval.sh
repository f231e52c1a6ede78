#!/usr/bin/env bash
# The device-level detector as a user gets it: every rig shape and seed of a set written as
# JSON lines (`rig write`), run through `sensorflow run` with the windows one row interval
# long and no model flag (the default: the shipped learned model where it fits), then scored
# per row against the run's labels (`evaluate --rows`), pooled over all runs (micro-average).
# Usage: scripts/rig-engine-eval.sh [held-out|design] [extra run flags...]
#   e.g. scripts/rig-engine-eval.sh held-out --device-model statistical
# SF_WARMUP=labels warms each device up on the run's labelled warm-up (as `rig detect` and
# the offline harness do) instead of the engine's default.
set -euo pipefail
cd "$(dirname "$0")/.."
set_name=${1:-held-out}
shift || true
case "$set_name" in
  held-out) seeds=$(seq 9001 9016) ;;
  design) seeds=$(seq 101 108) ;;
  *) echo "usage: $0 [held-out|design] [run flags...]" >&2; exit 2 ;;
esac
bin=${SENSORFLOW_BIN:-target/release/sensorflow}
[ -x "$bin" ] || cargo build --release -q --bin sensorflow
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
declare -A interval=([pump]=1s [hvac]=60s [line]=5s [compressor]=10s)
: > "$work/rows"
for rig in pump hvac line compressor; do
  for seed in $seeds; do
    "$bin" rig write --rig "$rig" --seed "$seed" -o "$work/run.jsonl" >/dev/null
    warmup=()
    if [ "${SF_WARMUP:-}" = labels ]; then
      warmup=(--device-warmup "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["warmup_rows"])' "$work/run.labels.json")")
    fi
    "$bin" run --source jsonl --input "$work/run.jsonl" --window "${interval[$rig]}" --model none \
      --alerts none --quiet --scores "$work/scores.csv" "${warmup[@]}" "$@" 2>/dev/null
    # | rows | anomalous | precision | recall | F1 | FAR | events | delay |
    line=$("$bin" evaluate --rows "$work/run.labels.json" --scores "$work/scores.csv" | tail -1)
    echo "$rig $seed $line" >> "$work/rows"
    echo "$rig $seed $line"
  done
done
python3 - "$work/rows" <<'PY'
import sys
tp = fp = pos = neg = 0.0
det = tot = 0
for line in open(sys.argv[1]):
    f = [c.strip() for c in line.split("|")]
    rows, anom, rec, far = float(f[1]), float(f[2]), float(f[4]), float(f[6])
    d, t = f[7].split("/")
    tp += rec * anom; pos += anom; fp += far * (rows - anom); neg += rows - anom
    det += int(d); tot += int(t)
prec = tp / (tp + fp) if tp + fp else 0.0
rec = tp / pos if pos else 0.0
f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
print(f"pooled: precision {prec:.3f} recall {rec:.3f} F1 {f1:.3f} FAR {fp / neg:.3f} events {det}/{tot}")
PY
