#!/usr/bin/env bash
# Soak benchmark (issue 17; a benchmark, not a CI test): the full default pipeline — the
# simulator (1,000 devices × temperature, humidity, vibration, paced in real time), the
# default rules and model, alerts to a file, the HTTP server scraped every second — at
# SF_RATE events/s (200,000; at most 3,000,000 and best a divisor of it: each series reports
# every 3,000 / SF_RATE s, in whole ms) for SF_MINUTES minutes (10). Prints per minute: events/s,
# RSS, open file descriptors, alerts, and the p50/p99 of that minute's alert latency
# (`sensorflow_ingest_to_alert_seconds`: the watermark passing a window's end → the alert
# written; from the deltas of the /metrics histogram, so each quantile is the upper bound of
# its bucket: 1-2.5-5 steps), then checks the soak criteria against minute 2: RSS within ±10 %,
# every later minute's p99 ≤ 1.5× minute 2's (at bucket resolution), the same descriptor count
# at the end. The run lasts a minute longer than measured and is stopped after the last minute.
# JSON to target/bench-results/soak.json.
#   scripts/soak.sh            SF_RATE=50000 SF_MINUTES=3 scripts/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${SF_RATE:-200000}
MINUTES=${SF_MINUTES:-10}
DEVICES=1000
case "$RATE$MINUTES" in *[!0-9]*) echo "soak.sh: SF_RATE and SF_MINUTES must be whole numbers" >&2; exit 2 ;; esac
# Each of the 3 series of a device reports every interval: devices × 3 / interval = rate.
interval_ms=$(( DEVICES * 3 * 1000 / RATE ))
[ "$interval_ms" -ge 1 ] || { echo "soak.sh: at most $((DEVICES * 3 * 1000)) events/s" >&2; exit 2; }
cargo build --release --quiet
out=target/soak
rm -rf "$out" && mkdir -p "$out" target/bench-results
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
target/release/sensorflow run --devices "$DEVICES" --interval "${interval_ms}ms" --realtime 1 \
  --span "$((MINUTES + 2))m" --duration "$((MINUTES + 1))m" --http "127.0.0.1:$port" \
  --alerts "$out/alerts.jsonl" --workers 2 2>"$out/run.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
python3 - "$pid" "$port" "$MINUTES" "$RATE" "$interval_ms" <<'PY'
import json, os, re, sys, time, urllib.request
pid, port, minutes, rate, interval_ms = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
url = f"http://127.0.0.1:{port}/metrics"
bucket_re = re.compile(r'^sensorflow_ingest_to_alert_seconds_bucket\{.*le="([^"]+)".*\} (\d+)', re.M)
records_re = re.compile(r'^sensorflow_records_in_total(?:\{[^}]*\})? (\d+)', re.M)

def scrape():
    try:
        text = urllib.request.urlopen(url, timeout=2).read().decode()
    except OSError:
        return None
    buckets = {}
    for le, n in bucket_re.findall(text):
        buckets[float("inf") if le == "+Inf" else float(le)] = buckets.get(float("inf") if le == "+Inf" else float(le), 0) + int(n)
    records = sum(int(n) for n in records_re.findall(text))
    return buckets, records

def proc():
    try:
        rss = next(int(l.split()[1]) for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")) / 1024
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        return rss, fds
    except (OSError, StopIteration):
        return None

def quantile(delta, q):
    total = max(delta.values(), default=0)  # cumulative: the +Inf bucket holds every sample
    if total == 0:
        return None
    for le in sorted(delta):
        if delta[le] >= q * total:
            return le
    return None

start = time.time()
while scrape() is None:
    if time.time() - start > 60 or proc() is None:
        sys.exit("soak: the run's HTTP server never answered")
    time.sleep(0.2)
t0 = time.time()
prev = scrape()
rows, scrapes = [], 0
for m in range(1, minutes + 1):
    end = t0 + 60 * m
    last = prev
    while time.time() < end:
        time.sleep(max(0.0, min(1.0, end - time.time())))
        s = scrape()
        scrapes += s is not None
        if s is not None:
            last = s
    p = proc()
    if p is None:
        print(f"minute {m}: the run has ended", flush=True)
        break
    buckets, records = last
    delta = {le: n - prev[0].get(le, 0) for le, n in buckets.items()}
    row = {
        "minute": m,
        "events_per_s": (records - prev[1]) / 60,
        "rss_mb": round(p[0], 1),
        "fds": p[1],
        "alerts": max(delta.values(), default=0),
        "p50_s": quantile(delta, 0.5),
        "p99_s": quantile(delta, 0.99),
    }
    rows.append(row)
    prev = last
    fmt = lambda v: "–" if v is None else f"{v * 1000:.1f} ms"
    print(f"minute {m:2}: {row['events_per_s']:>10,.0f} events/s  RSS {row['rss_mb']:7.1f} MB  fds {row['fds']:3}  "
          f"alerts {row['alerts']:5}  ingest→alert p50 ≤ {fmt(row['p50_s'])}, p99 ≤ {fmt(row['p99_s'])}", flush=True)
checks = []
if len(rows) >= 3:
    base = rows[1]
    rss_ok = all(abs(r["rss_mb"] - base["rss_mb"]) <= 0.1 * base["rss_mb"] for r in rows[1:])
    p99s = [r["p99_s"] for r in rows[1:]]
    p99_ok = base["p99_s"] is not None and all(p is not None and p <= 1.5 * base["p99_s"] for p in p99s)
    fd_ok = rows[-1]["fds"] == base["fds"]
    rate_ok = all(r["events_per_s"] >= 0.95 * rate for r in rows[1:])
    checks = [("RSS within ±10 % of minute 2's", rss_ok), ("every p99 ≤ 1.5× minute 2's", p99_ok),
              ("descriptors at the end = minute 2's", fd_ok), (f"≥ 95 % of {rate:,} events/s every minute", rate_ok)]
    for name, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}: {name}")
json.dump({"rate": rate, "interval_ms": interval_ms, "minutes": rows, "scrapes": scrapes,
           "checks": {n: ok for n, ok in checks}}, open("target/bench-results/soak.json", "w"), indent=1)
print(f"({scrapes} scrapes of /metrics; the histogram's buckets bound each quantile from above)")
PY
kill -INT $pid 2>/dev/null || true
wait $pid || true
trap - EXIT
tail -25 "$out/run.log"
