//! Bad input never panics and is never silently lost: each case gets a clear error or a
//! counted dead letter that keeps the raw input and the reason.

use sensorflow::config::EventTime;
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

/// 20,000 events of 10 devices in time order, one device's clock in the year 3000.
fn lying_clock_file(dir: &std::path::Path) -> std::path::PathBuf {
    let lines: Vec<String> = (0..20_000u64)
        .map(|i| {
            let d = i % 10;
            let ts = if d == 3 { 32_503_680_000_000 + i * 100 } else { 1_704_067_200_000 + i * 100 };
            json_event(&format!("dev-{d}"), "temp", ts, 20.0 + (i % 7) as f64, i / 10)
        })
        .collect();
    write_lines(dir, "clock.jsonl", &lines)
}

#[test]
fn r15_one_device_clock_in_the_year_3000_is_dead_lettered_and_blinds_nothing_at_1_and_2_workers() {
    let dir = tmp();
    let path = lying_clock_file(dir.path());
    for workers in [1, 2] {
        let mut cfg = config(SourceConfig::Jsonl { paths: vec![path.clone()] }, workers);
        cfg.model = "none".into();
        cfg.window = 1000;
        let (summary, c) = run(&cfg);
        assert!(summary.balanced(), "{summary}");
        assert_eq!(summary.late, 0, "{summary}");
        assert_eq!(summary.processed, 18_000, "{summary}");
        assert_eq!(summary.dead_lettered, 2_000, "{summary}");
        // Counted per device (shown on /metrics and in the summary): the one lying clock.
        let by_device: Vec<(&str, u64)> =
            summary.clock_rejected.named.iter().map(|(d, n)| (d.as_str(), *n)).collect();
        assert_eq!((by_device, summary.clock_rejected.others), (vec![("dev-3", 2_000)], 0));
        assert!(
            summary.to_string().contains("timestamp out of range       2000  (dev-3 2000; see /metrics)"),
            "{summary}"
        );
        let dead = c.dead_letters();
        assert!(dead.iter().all(|d| d.reason == "timestamp out of range"), "{:?}", dead.first());
        assert!(String::from_utf8_lossy(&dead[0].raw).contains("\"dev-3\""), "the record is kept readable");
    }
    // Without the guard, the jump makes nearly everything late (the issue's measurement).
    let mut cfg = config(SourceConfig::Jsonl { paths: vec![path] }, 1);
    (cfg.model, cfg.max_future, cfg.max_jump) = ("none".into(), 0, 0);
    let (summary, _) = run(&cfg);
    assert!(summary.late > 17_000, "{summary}");
}

#[test]
fn r15_one_event_in_the_year_3000_first_middle_or_last_is_the_only_dead_letter_at_1_and_2_workers() {
    let dir = tmp();
    for bad in [0u64, 10_000, 19_999] {
        let lines: Vec<String> = (0..20_000u64)
            .map(|i| {
                let ts = if i == bad { 32_503_680_000_000 } else { 1_704_067_200_000 + i * 100 };
                json_event(&format!("dev-{}", i % 10), "temp", ts, 20.0, i / 10)
            })
            .collect();
        let path = write_lines(dir.path(), &format!("one-{bad}.jsonl"), &lines);
        for workers in [1, 2] {
            let mut cfg = config(SourceConfig::Jsonl { paths: vec![path.clone()] }, workers);
            cfg.model = "none".into();
            let (summary, c) = run(&cfg);
            let counts = (summary.processed, summary.dead_lettered, summary.late);
            assert_eq!(counts, (19_999, 1, 0), "bad event at {bad}, {workers} workers: {summary}");
            let dead = c.dead_letters();
            assert_eq!(dead[0].reason, "timestamp out of range");
            assert!(String::from_utf8_lossy(&dead[0].raw).contains("32503680000000"), "{:?}", dead[0]);
            // A replay with no wall-clock limit: the jump guard alone catches it mid-stream and
            // at the end (first, it has nothing to judge the event against).
            if bad > 0 {
                cfg.max_future = 0;
                let (summary, _) = run(&cfg);
                let counts = (summary.processed, summary.dead_lettered, summary.late);
                assert_eq!(counts, (19_999, 1, 0), "jump guard, bad event at {bad}: {summary}");
            }
        }
    }
}

#[test]
fn r15_recordings_of_later_days_concatenated_in_one_file_are_read_whole() {
    // Three recordings, two days apart, each in time order: each starts with a jump forward that
    // the following events confirm.
    let dir = tmp();
    let mut lines = Vec::new();
    for day in 0..3u64 {
        for i in 0..5_000u64 {
            let ts = 1_704_067_200_000 + day * 2 * 86_400_000 + i * 200;
            lines.push(json_event(&format!("dev-{}", i % 5), "temp", ts, 20.0, day * 1_000 + i / 5));
        }
    }
    let path = write_lines(dir.path(), "days.jsonl", &lines);
    let mut cfg = config(SourceConfig::Jsonl { paths: vec![path] }, 1);
    cfg.model = "none".into();
    let (summary, _) = run(&cfg);
    assert_eq!((summary.processed, summary.late, summary.dead_lettered), (15_000, 0, 0), "{summary}");
}

/// Start of the per-device recordings: 2024-01-01.
const REC_T0: u64 = 1_704_067_200_000;
/// Devices in the per-device file, each a 2-hour recording with a sample every 5 s.
const REC_DEVICES: u64 = 5;
const REC_SAMPLES: u64 = 2 * 3_600 / 5;

/// Device `d`'s temperature at sample `i`: 20, and 60 for five minutes from minute 10 + 10·d.
fn rec_value(d: u64, i: u64) -> f64 {
    let minute = i * 5 / 60;
    if (10 + 10 * d..15 + 10 * d).contains(&minute) {
        60.0
    } else {
        20.0
    }
}

/// The recordings of every device over the same two hours, one device after another (so the
/// file goes back two hours at each change of device); `extra(d, i)` lines follow sample i.
fn per_device_lines(extra: impl Fn(u64, u64) -> Vec<String>) -> Vec<String> {
    let mut lines = Vec::new();
    for d in 0..REC_DEVICES {
        for i in 0..REC_SAMPLES {
            lines.push(json_event(
                &format!("dev-{d}"),
                "temperature",
                REC_T0 + i * 5_000,
                rec_value(d, i),
                i,
            ));
            lines.extend(extra(d, i));
        }
    }
    lines
}

#[test]
fn r15_recordings_ordered_per_device_are_read_whole_in_device_mode_at_1_and_2_workers() {
    // A file of per-device recordings concatenated lost most of its events as late.
    let dir = tmp();
    let path = write_lines(dir.path(), "per-device.jsonl", &per_device_lines(|_, _| Vec::new()));
    let rules = write_file(
        dir.path(),
        "rules.toml",
        "[[rule]]\nname = \"hot\"\nmetric = \"temperature\"\nfield = \"max\"\nop = \">\"\nvalue = 50.0\n",
    );
    // Expected alerts from the data: per device, 1-minute windows' max, fired on the first
    // window above 50 and cleared on the first at or below it after that.
    let mut want = std::collections::BTreeSet::new();
    for d in 0..REC_DEVICES {
        let mut max = vec![f64::NEG_INFINITY; (REC_SAMPLES * 5 / 60) as usize];
        for i in 0..REC_SAMPLES {
            let w = (i * 5 / 60) as usize;
            max[w] = max[w].max(rec_value(d, i));
        }
        let mut hot = false;
        for (w, &m) in max.iter().enumerate() {
            if (m > 50.0) != hot {
                let kind = if hot { "Cleared" } else { "Fired" };
                want.insert((kind.to_string(), format!("dev-{d}"), REC_T0 + w as u64 * 60_000));
            }
            hot = m > 50.0;
        }
    }
    assert_eq!(want.len(), 2 * REC_DEVICES as usize, "one hot spell per device, fired and cleared");
    let total = REC_DEVICES * REC_SAMPLES;
    for workers in [1, 2] {
        let mut cfg = config(SourceConfig::Jsonl { paths: vec![path.clone()] }, workers);
        (cfg.model, cfg.window, cfg.rules) = ("none".into(), 60_000, Some(rules.clone()));
        let (summary, _) = run(&cfg);
        assert!(summary.late * 2 > total, "by partition most events are late, {workers} workers: {summary}");
        assert!(summary.to_string().contains("--event-time device"), "the note names the mode: {summary}");
        cfg.event_time = EventTime::Device;
        cfg.device_spread = 86_400_000;
        let (summary, c) = run(&cfg);
        let counts = (summary.processed, summary.late, summary.dead_lettered);
        assert_eq!(counts, (total, 0, 0), "by device, {workers} workers: {summary}");
        let got: std::collections::BTreeSet<_> = c
            .sorted_alerts()
            .iter()
            .map(|a| (format!("{:?}", a.kind), a.device.to_string(), a.window_start))
            .collect();
        assert_eq!(got, want, "{workers} workers");
    }
}

#[test]
fn r15_a_device_going_back_within_its_own_recording_is_still_late_in_device_mode() {
    // Control for per-device event time: dev-1 jumps back 30 minutes for three samples, an
    // hour into its recording; only those are late, and the lateness still applies per device.
    let back = |d: u64, i: u64| -> Vec<String> {
        if d == 1 && i == 720 {
            (0..3)
                .map(|j| json_event("dev-1", "temperature", REC_T0 + 1_800_000 + j * 5_000, 20.0, 10_000 + j))
                .collect()
        } else {
            Vec::new()
        }
    };
    let dir = tmp();
    let path = write_lines(dir.path(), "per-device-back.jsonl", &per_device_lines(back));
    let total = REC_DEVICES * REC_SAMPLES + 3;
    for workers in [1, 2] {
        let mut cfg = config(SourceConfig::Jsonl { paths: vec![path.clone()] }, workers);
        (cfg.model, cfg.event_time, cfg.device_spread) = ("none".into(), EventTime::Device, 86_400_000);
        let (summary, c) = run(&cfg);
        assert_eq!((summary.processed, summary.late), (total - 3, 3), "{workers} workers: {summary}");
        let mut late: Vec<u64> = c.late_events().iter().map(|l| l.event.ts - REC_T0).collect();
        late.sort_unstable();
        assert_eq!(late, vec![1_800_000, 1_805_000, 1_810_000]);
        cfg.lateness = 3_600_000;
        let (summary, _) = run(&cfg);
        assert_eq!((summary.processed, summary.late), (total, 0), "within the lateness: {summary}");
    }
}

#[test]
fn r15_device_event_time_settings_are_checked() {
    let mut cfg = config(SourceConfig::Jsonl { paths: vec!["x.jsonl".into()] }, 1);
    (cfg.event_time, cfg.device_spread) = (EventTime::Device, 0);
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("device_spread must be above 0"), "{e}");
    let out = sensorflow().args(["run", "--event-time", "per-key"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--event-time") && err.contains("partition") && err.contains("device"), "{err}");
    for args in [&["--event-time", "device", "--device-spread", "0"][..], &["--device-spread", "1h"]] {
        let out = sensorflow().arg("run").args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("device_spread must be above 0") || err.contains("--device-spread needs"),
            "{err}"
        );
    }
}

#[test]
fn r15_events_before_the_floor_or_far_ahead_of_the_wall_clock_are_dead_letters() {
    let dir = tmp();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let mut lines: Vec<String> =
        (0..100u64).map(|i| json_event("d", "m", now - 100_000 + i * 1000, 1.0, i)).collect();
    lines.insert(10, json_event("d", "m", 5_000, 1.0, 1000)); // 1970
    lines.insert(20, json_event("d", "m", now + 3 * 86_400_000, 1.0, 1001)); // three days ahead
    let path = write_lines(dir.path(), "mixed.jsonl", &lines);
    let mut cfg = config(SourceConfig::Jsonl { paths: vec![path] }, 1);
    cfg.model = "none".into();
    cfg.min_ts = 946_684_800_000; // 2000-01-01
    let (summary, c) = run(&cfg);
    assert_eq!((summary.processed, summary.dead_lettered, summary.late), (100, 2, 0), "{summary}");
    assert!(c.dead_letters().iter().all(|d| d.reason == "timestamp out of range"));
}

#[test]
fn r15_a_device_clock_a_year_ahead_in_a_replay_is_caught_by_the_jump_guard() {
    // A 2024 recording replayed: no wall-clock limit helps, the jump guard must.
    let dir = tmp();
    let lines: Vec<String> = (0..20_000u64)
        .map(|i| {
            let d = i % 10;
            let ahead = if d == 3 { 365 * 86_400_000 } else { 0 };
            json_event(&format!("dev-{d}"), "temp", 1_704_067_200_000 + ahead + i * 100, 20.0, i / 10)
        })
        .collect();
    let path = write_lines(dir.path(), "ahead.jsonl", &lines);
    for workers in [1, 2] {
        let mut cfg = config(SourceConfig::Jsonl { paths: vec![path.clone()] }, workers);
        (cfg.model, cfg.max_future) = ("none".into(), 0);
        let (summary, _) = run(&cfg);
        assert_eq!((summary.processed, summary.late, summary.dead_lettered), (18_000, 0, 2_000), "{summary}");
    }
}
