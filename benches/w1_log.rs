//! W1: binary log → 1 s tumbling windows per device and metric → rule `max > 80` → alert
//! count, through the full engine at 1 and 2 workers and at 2 processes × 1 worker on
//! loopback (`sensorflow cluster`), plus the same aggregation in a bare loop over the decoded
//! log (the ceiling).
//!
//! Input: the W2 shape (1,000 devices, 10,000 events per second of event time), 50 M events
//! (override with `W1_EVENTS`), written once as a log into `target/bench-data/`.
//!
//! Run: `cargo bench --bench w1_log` (results in `target/bench-results/w1_log.json`).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use common::{best_of_three, data_dir, env_u64, report, Row};
use sensorflow::connectors::binlog::LogReader;
use sensorflow::connectors::SourceConfig;
use sensorflow_operators::{Dictionary, PartitionReader, Poll, SourceBatch};

fn dataset(events: u64) -> PathBuf {
    sensorflow::tools::bench::log_dataset(&data_dir(), events, 42).expect("generate the W1 log")
}

fn engine(path: &Path, rules: &Path, workers: usize) -> (Row, u64) {
    let source = SourceConfig::Log { path: path.to_path_buf(), realtime: None };
    common::engine("W1 engine: log→windows→rule", source, rules, workers, "none")
}

fn cluster(path: &Path, rules: &Path, events: u64) -> Row {
    let tail =
        ["--window", "1s", "--model", "none", "--alerts", "none", "--no-reload", "--rules"].map(OsStr::new);
    let args: Vec<&OsStr> =
        [OsStr::new("replay"), path.as_os_str()].into_iter().chain(tail).chain([rules.as_os_str()]).collect();
    common::cluster("W1 cluster: 2 processes x 1 worker", &args, events)
}

/// Decode the log and aggregate max per (device, 1 s window) in one thread.
fn bare_loop(path: &Path) -> Row {
    use sensorflow_operators::hash::IdHashMap;
    let started = Instant::now();
    let mut reader = LogReader::new(path, 0, 1, Dictionary::default(), None);
    let mut batch = SourceBatch::default();
    let mut max: IdHashMap<(u64, u64), f64> = IdHashMap::default();
    let mut n = 0u64;
    loop {
        batch.events.clear();
        let poll = reader.poll(&mut batch).unwrap();
        for e in &batch.events {
            let m = max.entry((e.device.0, e.ts / 1000)).or_insert(f64::MIN);
            *m = m.max(e.value);
        }
        n += batch.events.len() as u64;
        if poll == Poll::Done {
            break;
        }
    }
    let over = max.values().filter(|&&m| m > 80.0).count();
    Row {
        name: "bare loop (decode + aggregate)".into(),
        workers: 1,
        events: n,
        elapsed: started.elapsed(),
        note: format!("{over} windows over 80"),
    }
}

fn main() {
    let events = env_u64("W1_EVENTS", 50_000_000);
    let path = dataset(events);
    let rules = sensorflow::tools::bench::hot_rules(&data_dir()).expect("write the W rules");
    let _ = bare_loop(&path); // warm the page cache
    let mut rows = vec![bare_loop(&path)];
    for workers in [1, 2] {
        rows.push(best_of_three(|| engine(&path, &rules, workers)));
    }
    rows.push(cluster(&path, &rules, events));
    report("w1_log", &rows);
}
