//! W2: JSON lines → parse → 1 s tumbling windows per device and metric → rule `max > 80` →
//! alert count, through the full engine at 1 and 2 workers, plus the same computation in a
//! bare single-threaded loop (the ceiling the engine's overhead is measured against), and W3:
//! W2 plus the shipped anomaly model scoring every event's 64-value window.
//!
//! Input: 1,000 devices, 10,000 events per second of event time, 10 M events (override with
//! `W2_EVENTS`), lines shaped
//! `{"device":"dev-000123","metric":"temperature","ts":1700000000123,"value":23.41,"seq":42}`,
//! generated once into `target/bench-data/`.
//!
//! Run: `cargo bench --bench w2_json` (results in `target/bench-results/w2_json.json`).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use common::{best_of_three, data_dir, env_u64, report, Row};
use sensorflow::connectors::SourceConfig;

fn dataset(events: u64) -> PathBuf {
    sensorflow::tools::bench::json_dataset(&data_dir(), events, 42).expect("generate the W2 dataset")
}

fn engine(path: &Path, rules: &Path, workers: usize, model: &str) -> (Row, u64) {
    let name =
        if model == "none" { "W2 engine: jsonl→windows→rule" } else { "W3 engine: W2 + anomaly model" };
    common::engine(name, SourceConfig::Jsonl { paths: vec![path.to_path_buf()] }, rules, workers, model)
}

/// The same work in a plain loop: read the file, parse each line with the engine's parser,
/// aggregate max per (device, 1 s window), count windows over 80.
fn bare_loop(path: &Path) -> Row {
    use sensorflow::connectors::parse::{EventBuilder, Limits};
    use sensorflow::connectors::text::json::parse_json;
    use sensorflow_operators::hash::IdHashMap;
    use std::io::Read;
    let started = Instant::now();
    let mut file = std::fs::File::open(path).unwrap();
    let mut b = EventBuilder::new(Default::default(), Default::default(), Limits::default());
    let mut max: IdHashMap<(u64, u64), f64> = IdHashMap::default();
    let mut n = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    let mut have = 0;
    loop {
        let read = file.read(&mut buf[have..]).unwrap();
        if read == 0 {
            break;
        }
        have += read;
        let mut start = 0;
        while let Some(nl) = memchr::memchr(b'\n', &buf[start..have]) {
            let e = parse_json(&buf[start..start + nl], &mut b).unwrap();
            let m = max.entry((e.device.0, e.ts / 1000)).or_insert(f64::MIN);
            *m = m.max(e.value);
            n += 1;
            start += nl + 1;
        }
        buf.copy_within(start..have, 0);
        have -= start;
    }
    let over = max.values().filter(|&&m| m > 80.0).count();
    Row {
        name: "bare loop (same parser, no engine)".into(),
        workers: 1,
        events: n,
        elapsed: started.elapsed(),
        note: format!("{over} windows over 80"),
    }
}

fn cluster(path: &Path, rules: &Path, events: u64) -> Row {
    let head = ["run", "--source", "jsonl", "--input"].map(OsStr::new);
    let tail =
        ["--window", "1s", "--model", "none", "--alerts", "none", "--no-reload", "--rules"].map(OsStr::new);
    let args: Vec<&OsStr> =
        head.into_iter().chain([path.as_os_str()]).chain(tail).chain([rules.as_os_str()]).collect();
    common::cluster("W2 cluster: 2 processes x 1 worker", &args, events)
}

fn main() {
    let events = env_u64("W2_EVENTS", 10_000_000);
    let path = dataset(events);
    let rules = sensorflow::tools::bench::hot_rules(&data_dir()).expect("write the W rules");
    // Warm the page cache so every configuration reads from memory.
    let _ = bare_loop(&path);
    let mut rows = vec![bare_loop(&path)];
    for workers in [1, 2] {
        rows.push(best_of_three(|| engine(&path, &rules, workers, "none")));
    }
    rows.push(cluster(&path, &rules, events));
    for workers in [1, 2] {
        // W3: the same with the shipped anomaly model scoring every event's window.
        rows.push(engine(&path, &rules, workers, "default").0);
    }
    report("w2_json", &rows);
}
