//! Bad input never panics and is never silently lost: each case gets a clear error or a
//! counted dead letter that keeps the raw input and the reason.

use sensorflow::connectors::SourceConfig;
use sensorflow::Error;
use sensorflow_operators::{BadRecordPolicy, DeadLetter};

use crate::common::*;

/// Runs a JSON-lines file made of `good` valid lines around `bad` raw bytes, at 1 and 2
/// workers; returns the dead letters (checked to balance the counters).
fn dead_letters_for(bad: &[u8], good: usize) -> Vec<DeadLetter> {
    let dir = tmp();
    let path = dir.path().join("input.jsonl");
    let mut bytes = Vec::new();
    for i in 0..good {
        bytes.extend_from_slice(json_event("d1", "temperature", 1000 + i as u64, 20.0, i as u64).as_bytes());
        bytes.push(b'\n');
        if i == good / 2 {
            bytes.extend_from_slice(bad);
            bytes.push(b'\n');
        }
    }
    std::fs::write(&path, &bytes).unwrap();
    let mut result = None;
    for workers in [1, 2] {
        let mut cfg = config(SourceConfig::Jsonl { paths: vec![path.clone()] }, workers);
        cfg.lateness = 60_000;
        let (summary, c) = run(&cfg);
        assert!(summary.balanced(), "{summary}");
        assert_eq!(summary.processed as usize, good, "valid events are unaffected");
        assert_eq!(summary.dead_lettered as usize, c.dead_letters().len());
        result = Some(c.dead_letters());
    }
    result.unwrap()
}

fn one_reason(bad: &[u8]) -> String {
    let dead = dead_letters_for(bad, 10);
    assert_eq!(dead.len(), 1, "exactly one dead letter for {:?}", String::from_utf8_lossy(bad));
    assert_eq!(dead[0].raw, bad, "the raw input is kept");
    assert!(dead[0].position > 0, "the position is recorded");
    dead[0].reason.clone()
}

#[test]
fn malformed_json() {
    let r = one_reason(br#"{"device":"d1","metric":"temperature","ts":1000,"value":20.0"#);
    assert!(r.contains("invalid event JSON"), "{r}");
    assert!(one_reason(b"this is not json").contains("invalid event JSON"));
}

#[test]
fn wrong_types() {
    let r = one_reason(br#"{"device":"d1","metric":"temperature","ts":1000,"value":"warm"}"#);
    assert!(r.contains("invalid type"), "{r}");
    let r = one_reason(br#"{"device":42,"metric":"temperature","ts":1000,"value":1}"#);
    assert!(r.contains("invalid type"), "{r}");
    let r = one_reason(br#"{"device":"d1","metric":"temperature","ts":-5,"value":1}"#);
    assert!(r.contains("ts") || r.contains("invalid"), "{r}");
}

#[test]
fn missing_fields() {
    let r = one_reason(br#"{"device":"d1","ts":1000,"value":1}"#);
    assert!(r.contains("missing field `metric`"), "{r}");
}

#[test]
fn nan_inf_and_huge_values() {
    assert!(
        one_reason(br#"{"device":"d1","metric":"t","ts":1000,"value":NaN}"#).contains("invalid event JSON")
    );
    assert!(one_reason(br#"{"device":"d1","metric":"t","ts":1000,"value":1e999}"#)
        .contains("not a finite number"));
    assert!(one_reason(br#"{"device":"d1","metric":"t","ts":1000,"value":-Infinity}"#)
        .contains("invalid event JSON"));
    assert!(
        one_reason(br#"{"device":"d1","metric":"t","ts":1000,"value":1e200}"#).contains("beyond the limit")
    );
}

#[test]
fn non_utf8_bytes() {
    let r = one_reason(b"{\"device\":\"d\xff\xfe1\",\"metric\":\"t\",\"ts\":1000,\"value\":1}");
    assert!(r.contains("UTF-8") || r.contains("invalid"), "{r}");
}

#[test]
fn ten_megabyte_line() {
    let mut huge = br#"{"device":"d1","metric":"t","ts":1000,"value":1,"pad":""#.to_vec();
    huge.resize(10 * 1024 * 1024, b'x');
    huge.extend_from_slice(br#""}"#);
    let dead = dead_letters_for(&huge, 10);
    assert_eq!(dead.len(), 1);
    assert!(dead[0].reason.contains("longer than"), "{}", dead[0].reason);
    assert_eq!(
        dead[0].raw.len(),
        sensorflow_operators::DEAD_LETTER_RAW_LIMIT,
        "raw input is kept, cut to the limit"
    );
    assert!(dead[0].raw.starts_with(br#"{"device":"d1""#));
}

#[test]
fn truncated_last_line() {
    let dir = tmp();
    let path = dir.path().join("cut.jsonl");
    let mut text = String::new();
    for i in 0..5 {
        text.push_str(&json_event("d1", "t", 1000 + i, 1.0, i));
        text.push('\n');
    }
    text.push_str(r#"{"device":"d1","metric":"t","ts":20"#); // the writer died here
    std::fs::write(&path, text).unwrap();
    let (summary, c) = run(&config(SourceConfig::Jsonl { paths: vec![path.clone()] }, 1));
    assert_eq!((summary.processed, summary.dead_lettered), (5, 1));
    let dead = c.dead_letters();
    assert!(dead[0].reason.contains("truncated last line"), "{}", dead[0].reason);
    // A complete last line without a newline is fine.
    std::fs::write(&path, json_event("d1", "t", 5, 1.0, 0)).unwrap();
    let (summary, _) = run(&config(SourceConfig::Jsonl { paths: vec![path] }, 2));
    assert_eq!((summary.processed, summary.dead_lettered), (1, 0));
}

#[test]
fn empty_file_and_blank_lines() {
    let dir = tmp();
    let empty = write_file(dir.path(), "empty.jsonl", "");
    for workers in [1, 2] {
        let (summary, c) = run(&config(SourceConfig::Jsonl { paths: vec![empty.clone()] }, workers));
        assert_eq!((summary.records_in, summary.alerts()), (0, 0));
        assert!(c.dead_letters().is_empty());
    }
    let blank =
        write_file(dir.path(), "blank.jsonl", &format!("\n\n{}\n\r\n", json_event("d", "t", 1, 1.0, 0)));
    let (summary, _) = run(&config(SourceConfig::Jsonl { paths: vec![blank] }, 1));
    assert_eq!((summary.records_in, summary.processed), (1, 1));
}

#[test]
fn flood_of_malformed_lines_is_all_counted() {
    let dir = tmp();
    let mut lines = Vec::new();
    for i in 0..20_000u64 {
        if i % 2 == 0 {
            lines.push(json_event("d1", "t", i, 1.0, i));
        } else {
            lines.push(format!("garbage {i}"));
        }
    }
    let path = write_lines(dir.path(), "flood.jsonl", &lines);
    let mut cfg = config(SourceConfig::Jsonl { paths: vec![path] }, 2);
    cfg.lateness = 100_000;
    cfg.dead_letters = Some(dir.path().join("dead.jsonl"));
    let (summary, _) = run(&cfg);
    assert_eq!((summary.processed, summary.dead_lettered), (10_000, 10_000));
    let written = std::fs::read_to_string(dir.path().join("dead.jsonl")).unwrap();
    assert_eq!(written.lines().count(), 10_000);
    let first: serde_json::Value = serde_json::from_str(written.lines().next().unwrap()).unwrap();
    assert!(first["raw"].as_str().unwrap().starts_with("garbage"));
    assert!(first["reason"].as_str().unwrap().contains("invalid event JSON"));
}

#[test]
fn fail_policy_stops_with_the_position() {
    let dir = tmp();
    let lines = vec![json_event("d1", "t", 1, 1.0, 0), "oops".to_string(), json_event("d1", "t", 2, 1.0, 1)];
    let path = write_lines(dir.path(), "x.jsonl", &lines);
    let mut cfg = config(SourceConfig::Jsonl { paths: vec![path] }, 1);
    cfg.on_bad_record = BadRecordPolicy::Fail;
    let err = sensorflow::run(&cfg).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Source(_)), "{text}");
    let position = lines[0].len() + 1;
    assert!(text.contains("policy is fail") && text.contains(&format!("at {position}:")), "{text}");
}

#[test]
fn unknown_rule_fields_are_a_clear_error() {
    let (_dir, rules) =
        tmp_file("rules.toml", "[[rule]]\nname='a'\nmetric='t'\nop='>'\nvalue=1\nthreshhold=2\n");
    let mut cfg = config(SourceConfig::Simulator(small_sim()), 1);
    cfg.rules = Some(rules);
    let err = sensorflow::run(&cfg).unwrap_err().to_string();
    assert!(err.contains("unknown field `threshhold`") && err.contains("rules.toml"), "{err}");
}

#[test]
fn missing_input_file_is_a_clear_error() {
    let cfg = config(SourceConfig::Jsonl { paths: vec!["/nonexistent/input.jsonl".into()] }, 2);
    let err = sensorflow::run(&cfg).unwrap_err().to_string();
    assert!(err.contains("/nonexistent/input.jsonl"), "{err}");
}

#[test]
fn csv_bad_rows_are_dead_lettered() {
    let (_dir, path) = tmp_file("x.csv", "device,metric,ts,value,seq\nd1,t,1000,1.5,0\nd1,t,1001,abc,1\nd1,t,1002\nd1,t,1003,inf,3\nd1,t,2023-11-14T22:13:20Z,2,4\n");
    let mut cfg = config(SourceConfig::Csv { paths: vec![path] }, 2);
    cfg.lateness = u64::MAX / 4;
    let (summary, c) = run(&cfg);
    assert_eq!((summary.processed, summary.dead_lettered), (2, 3));
    let mut reasons: Vec<String> = c.dead_letters().into_iter().map(|d| d.reason).collect();
    reasons.sort();
    assert!(reasons[0].contains("expected 5 fields"), "{reasons:?}");
    assert!(reasons[1].contains(r#""abc" is not a number"#), "{reasons:?}");
    assert!(reasons[2].contains("not a finite number"), "{reasons:?}");
}
