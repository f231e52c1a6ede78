//! The binary event log: record any source, replay it, and reject damaged files clearly.

use std::path::Path;
use std::time::Instant;

use sensorflow::connectors::SourceConfig;
use sensorflow::tools::record::record;

use crate::common::{alert_view, config, run, small_sim, tmp, write_file};

fn log_source(path: &Path) -> SourceConfig {
    SourceConfig::Log { path: path.to_path_buf(), realtime: None }
}

fn recorded_sim(dir: &Path) -> (std::path::PathBuf, u64) {
    let path = dir.join("sim.sflog");
    let r = record(&SourceConfig::Simulator(small_sim()), &path, None).unwrap();
    assert!(r.chunks >= 2, "names and events chunks");
    (path, r.events)
}

#[test]
fn replay_gives_the_alerts_of_the_recorded_source_at_1_and_2_workers() {
    let dir = tmp();
    let (path, events) = recorded_sim(dir.path());
    let (direct, direct_out) = run(&config(SourceConfig::Simulator(small_sim()), 1));
    assert_eq!(direct.records_in, events);
    for workers in [1, 2] {
        let (s, out) = run(&config(log_source(&path), workers));
        assert_eq!(s.records_in, events);
        assert_eq!(s.processed, events);
        assert_eq!(alert_view(&out), alert_view(&direct_out), "{workers} workers");
    }
}

#[test]
fn a_recorded_file_of_jsonl_replays_the_same_events() {
    let dir = tmp();
    let lines: Vec<String> = (0..5000u64)
        .map(|i| crate::common::json_event("d1", "temperature", i * 10, (i % 97) as f64, i))
        .collect();
    let input = crate::common::write_lines(dir.path(), "in.jsonl", &lines);
    let path = dir.path().join("in.sflog");
    let r = record(&SourceConfig::Jsonl { paths: vec![input.clone()] }, &path, None).unwrap();
    assert_eq!(r.events, 5000);
    let (a, out_a) = run(&config(SourceConfig::Jsonl { paths: vec![input] }, 1));
    let (b, out_b) = run(&config(log_source(&path), 2));
    assert_eq!(a.windows_closed, b.windows_closed);
    assert_eq!(alert_view(&out_a), alert_view(&out_b));
}

fn replay_error(path: &Path) -> String {
    match sensorflow::run(&config(log_source(path), 2)) {
        Ok(s) => panic!("a damaged log replayed without error: {s}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_flipped_byte_is_a_checksum_error() {
    let dir = tmp();
    let (path, _) = recorded_sim(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();
    let err = replay_error(&path);
    assert!(err.contains("corrupt file"), "{err}");
    assert!(err.contains("offset"), "{err}");
}

#[test]
fn a_truncated_chunk_is_an_error() {
    let dir = tmp();
    let (path, _) = recorded_sim(dir.path());
    let len = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len - 1000).unwrap();
    let err = replay_error(&path);
    assert!(err.contains("truncated chunk"), "{err}");
}

#[test]
fn a_wrong_magic_or_a_foreign_file_is_an_error() {
    let dir = tmp();
    let (path, _) = recorded_sim(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] = b'X';
    std::fs::write(&path, &bytes).unwrap();
    assert!(replay_error(&path).contains("not a sensorflow log"));
    let json = write_file(dir.path(), "events.jsonl", "{\"device\":\"d\"}\n");
    assert!(replay_error(&json).contains("not a sensorflow log"));
    let empty = write_file(dir.path(), "empty.sflog", "");
    assert!(replay_error(&empty).contains("not a sensorflow log"));
}

#[test]
fn a_corrupt_chunk_length_is_an_error_not_an_allocation() {
    let dir = tmp();
    let (path, _) = recorded_sim(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    // The first chunk header starts after the 8-byte file header; its length field at +12.
    bytes[8 + 12..8 + 16].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let err = replay_error(&path);
    assert!(err.contains("corrupt file"), "{err}");
}

#[test]
fn real_time_replay_is_paced_by_event_time() {
    let dir = tmp();
    let lines: Vec<String> = (0..=100u64)
        .map(|i| crate::common::json_event("d1", "temperature", 1_000_000 + i * 10, 1.0, i))
        .collect();
    let input = crate::common::write_lines(dir.path(), "in.jsonl", &lines);
    let path = dir.path().join("in.sflog");
    record(&SourceConfig::Jsonl { paths: vec![input] }, &path, None).unwrap();
    // 1 s of event time at 2x: about half a second.
    let started = Instant::now();
    let (s, _) = run(&config(SourceConfig::Log { path, realtime: Some(2.0) }, 1));
    let took = started.elapsed().as_secs_f64();
    assert_eq!(s.processed, 101);
    assert!((0.45..3.0).contains(&took), "took {took} s");
}
