//! Shared helpers.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sensorflow::config::{AlertOutput, RunConfig};
use sensorflow::connectors::simulator::SimConfig;
use sensorflow::connectors::SourceConfig;
use sensorflow::{run_collect, Collected, Summary};

/// A temporary directory that lives as long as the value.
pub fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// Writes `text` to `dir/name`.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write file");
    path
}

/// A temporary directory holding `text` as `name` alone, and that file's path.
pub fn tmp_file(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tmp();
    let path = write_file(dir.path(), name, text);
    (dir, path)
}

/// Writes `lines` (each followed by a newline) to `dir/name`.
pub fn write_lines(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let mut text = lines.join("\n");
    text.push('\n');
    write_file(dir, name, &text)
}

/// The `sensorflow` binary under test.
pub fn sensorflow() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sensorflow"))
}

/// `sensorflow simulate --devices N --span SPAN -o path`, which must succeed; its output.
pub fn simulate_file(path: &Path, devices: &str, span: &str) -> Output {
    let out = sensorflow()
        .args(["simulate", "--devices", devices, "--span", span, "-o"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// One canonical JSON event line.
pub fn json_event(device: &str, metric: &str, ts: u64, value: f64, seq: u64) -> String {
    format!(r#"{{"device":"{device}","metric":"{metric}","ts":{ts},"value":{value},"seq":{seq}}}"#)
}

/// A small, anomaly-rich simulator config.
pub fn small_sim() -> SimConfig {
    SimConfig {
        devices: 60,
        span_ms: 30 * 60 * 1000,
        anomaly_rate_per_hour: 2.0,
        seed: 7,
        ..SimConfig::default()
    }
}

/// A quiet run config for `source`.
pub fn config(source: SourceConfig, workers: usize) -> RunConfig {
    RunConfig { source, workers, alerts: AlertOutput::None, summary: false, ..RunConfig::default() }
}

/// Runs and returns summary + collected output; panics with the error chain on failure.
pub fn run(config: &RunConfig) -> (Summary, Collected) {
    run_collect(config).unwrap_or_else(|e| panic!("run failed: {e}"))
}

/// Sorted alert ids and values, the worker-independent view of a run's alerts.
pub fn alert_view(c: &Collected) -> Vec<(String, String)> {
    c.sorted_alerts().iter().map(|a| (a.id(), format!("{:.9}", a.value))).collect()
}

/// The NAB corpus: `$SENSORFLOW_NAB_DIR`, else `../shared/datasets/nab` beside the checkout
/// (the tests run in the package root).
pub fn nab_root() -> PathBuf {
    sensorflow_models::nab::discover_root(None)
        .expect("no NAB corpus: set SENSORFLOW_NAB_DIR or put it at ../shared/datasets/nab")
}
