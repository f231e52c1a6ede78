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

use std::time::SystemTime;

use common::{data_dir, env_u64};
use sensorflow::config::{AlertOutput, RunConfig};
use sensorflow::connectors::simulator::SimConfig;
use sensorflow::connectors::SourceConfig;

fn main() {
    let secs = env_u64("L_SECS", 10);
    let tick = env_u64("L_TICK_MS", 10).max(1);
    let rates: Vec<u64> = std::env::var("L_RATES")
        .ok()
        .map(|s| s.split(',').filter_map(|r| r.trim().replace('_', "").parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000, 1_000_000]);
    let rules = data_dir().join("latency-rules.toml");
    let mut text = sensorflow::rules_file::DEFAULT_RULES.to_string();
    text.push_str(
        "\n[[rule]]\nname = \"warm\"\nmetric = \"temperature\"\nfield = \"max\"\nop = \">\"\nvalue = 21.5\n",
    );
    std::fs::write(&rules, text).unwrap();
    let mut rows = Vec::new();
    println!(
        "\nL: decision latency, 2 workers, default pipeline + a frequent rule, {secs} s per rate, {tick} ms ticks"
    );
    println!(
        "{:>12} {:>12} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "offered/s", "achieved/s", "decisions", "p50 ms", "p99 ms", "p99.9 ms", "max ms"
    );
    for rate in rates {
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as u64;
        let sim = SimConfig {
            devices: (rate * tick / 3000).max(1),
            interval_ms: tick,
            span_ms: secs * 1000,
            start_ms: now / 1000 * 1000 + 1000,
            realtime_speed: Some(1.0),
            ..SimConfig::default()
        };
        let config = RunConfig {
            source: SourceConfig::Simulator(sim),
            workers: 2,
            window: 1000,
            rules: Some(rules.clone()),
            reload_rules: false,
            alerts: AlertOutput::None,
            summary: false,
            ..RunConfig::default()
        };
        let s = sensorflow::run(&config).expect("run");
        let achieved = s.records_in as f64 / s.elapsed.as_secs_f64();
        let l = s.latency.expect("decisions were made");
        let ms = |us: u64| us as f64 / 1000.0;
        println!(
            "{rate:>12} {achieved:>12.0} {:>10} {:>10.3} {:>10.3} {:>10.3} {:>10.3}",
            l.count,
            ms(l.p50_us),
            ms(l.p99_us),
            ms(l.p999_us),
            ms(l.max_us)
        );
        rows.push(serde_json::json!({
            "offered_events_per_sec": rate, "achieved_events_per_sec": achieved, "events": s.records_in,
            "decisions": l.count, "p50_ms": ms(l.p50_us), "p99_ms": ms(l.p99_us),
            "p999_ms": ms(l.p999_us), "max_ms": ms(l.max_us),
        }));
    }
    let json =
        serde_json::json!({ "bench": "latency", "machine": common::machine(), "workers": 2, "rows": rows });
    let path = common::results_dir().join("latency.json");
    std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    println!("written to {}", path.display());
}
