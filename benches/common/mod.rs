//! Shared benchmark setup: where data and results live, machine facts, result files.
#![allow(dead_code)] // each benchmark uses a different part of this module

use std::path::PathBuf;
use std::time::Duration;

/// `target/bench-data`, created on demand (generated inputs are cached there).
pub fn data_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    std::fs::create_dir_all(&dir).expect("create target/bench-data");
    dir
}

/// `target/bench-results`, created on demand.
pub fn results_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-results");
    std::fs::create_dir_all(&dir).expect("create target/bench-results");
    dir
}

/// An integer from the environment, or `default`.
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.replace('_', "").parse().ok()).unwrap_or(default)
}

/// CPU model, core count and commit, for the result file.
pub fn machine() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    serde_json::json!({ "cpu": cpu, "cores": cores, "commit": commit })
}

/// The longest `elapsed` among the run summaries in a cluster's standard error.
pub fn slowest_process(stderr: &[u8]) -> Option<Duration> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|l| l.starts_with("elapsed"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .reduce(f64::max)
        .map(Duration::from_secs_f64)
}

/// One run of a W workload through the engine, as a row, with its fired-alert count.
pub fn engine(
    name: &str,
    source: sensorflow::connectors::SourceConfig,
    rules: &std::path::Path,
    workers: usize,
    model: &str,
) -> (Row, u64) {
    let r = sensorflow::tools::bench::run_w(name, source, rules, workers, model).expect("run");
    let row = Row {
        name: name.into(),
        workers,
        events: r.events,
        elapsed: Duration::from_secs_f64(r.seconds),
        note: format!("{} alerts fired", r.alerts),
    };
    (row, r.alerts)
}

/// The fastest of three runs of `run` (the first also warms the page cache); every run must
/// fire the same alerts.
pub fn best_of_three(mut run: impl FnMut() -> (Row, u64)) -> Row {
    let runs: Vec<(Row, u64)> = (0..3).map(|_| run()).collect();
    let fired = runs[0].1;
    assert!(runs.iter().all(|r| r.1 == fired), "alert counts must not depend on the run");
    runs.into_iter().map(|r| r.0).min_by_key(|r| r.elapsed).expect("three runs")
}

/// 2 processes × 1 worker on loopback (`sensorflow cluster -- <command>`), reporting the slowest
/// process's run time beside the wall time including start-up and connection.
pub fn cluster(name: &str, command: &[&std::ffi::OsStr], events: u64) -> Row {
    let started = std::time::Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sensorflow"))
        .args(["cluster", "--processes", "2", "-w", "1", "--"])
        .args(command)
        .output()
        .expect("launch the cluster");
    let wall = started.elapsed();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Row {
        name: name.into(),
        workers: 2,
        events,
        elapsed: slowest_process(&out.stderr).unwrap_or(wall),
        note: format!("slowest process's run time; {:.2} s wall incl. start-up", wall.as_secs_f64()),
    }
}

/// One measured configuration.
pub struct Row {
    pub name: String,
    pub workers: usize,
    pub events: u64,
    pub elapsed: Duration,
    pub note: String,
}

impl Row {
    pub fn events_per_sec(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
}

/// Prints the table and writes `target/bench-results/<bench>.json`.
pub fn report(bench: &str, rows: &[Row]) {
    println!("\n{bench}");
    println!(
        "{:<34} {:>7} {:>12} {:>9} {:>14}  note",
        "configuration", "workers", "events", "secs", "events/s"
    );
    for r in rows {
        println!(
            "{:<34} {:>7} {:>12} {:>9.3} {:>14.0}  {}",
            r.name,
            r.workers,
            r.events,
            r.elapsed.as_secs_f64(),
            r.events_per_sec(),
            r.note
        );
    }
    let json = serde_json::json!({
        "bench": bench,
        "machine": machine(),
        "rows": rows.iter().map(|r| serde_json::json!({
            "name": r.name, "workers": r.workers, "events": r.events,
            "seconds": r.elapsed.as_secs_f64(), "events_per_sec": r.events_per_sec(), "note": r.note,
        })).collect::<Vec<_>>(),
    });
    let path = results_dir().join(format!("{bench}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(&json).expect("json")).expect("write result");
    println!("written to {}", path.display());
}
