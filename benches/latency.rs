//! L: decision latency at fixed offered rates (10 k, 100 k, 1 M events/s), in process, paced
//! in real time, 2 workers, the full default pipeline (1 s windows, rules, anomaly model).
//!
//! Latency is measured from the wall-clock moment the source ingested the event that moved
//! the watermark past an alert's window end (for window rules; for the anomaly model, past the
//! scored event) to the moment the alert reached the sink (hdrhistogram, merged over workers).
//! Waiting for a window to end is not counted; time queued behind other events is.
//!
//! The simulator runs at real-time speed with 3 metrics per device every `L_TICK_MS` (default
//! 10 ms) and as many devices as the rate needs; it releases each tick's samples at once, so
//! the offered load comes in bursts of rate × tick (1,000 events per 10 ms at 100 k/s), and a
//! decision waits behind its burst. A rule that fires and clears often (`temperature max >
//! 21.5`) gives every second decisions to time. Settings: `L_SECS` (default 10), `L_RATES`
//! (comma list), `L_TICK_MS`.
//!
//! Run: `cargo bench --bench latency` (results in `target/bench-results/latency.json`).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{data_dir, env_u64};

fn main() {
    let secs = env_u64("L_SECS", 10);
    let tick = env_u64("L_TICK_MS", 10).max(1);
    let rates: Vec<u64> = std::env::var("L_RATES")
        .ok()
        .map(|s| s.split(',').filter_map(|r| r.trim().replace('_', "").parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000, 1_000_000]);
    let rows: Vec<_> = rates
        .into_iter()
        .map(|rate| sensorflow::tools::bench::latency(&data_dir(), rate, secs, tick, 2).expect("run"))
        .collect();
    sensorflow::tools::bench::print_table(
        &format!("L: decision latency, 2 workers, default pipeline + a frequent rule, {secs} s per rate"),
        &rows,
    );
    let json = serde_json::json!({
        "bench": "latency", "machine": common::machine(), "workers": 2, "tick_ms": tick, "rows": rows,
    });
    let path = common::results_dir().join("latency.json");
    std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    println!("written to {}", path.display());
}
