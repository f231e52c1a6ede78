//! Sources: CSV, NAB, the simulator and the datasets it writes.

use sensorflow::connectors::simulator::SimConfig;
use sensorflow::connectors::SourceConfig;
use sensorflow::tools::simulate::{simulate, Format};

use crate::common::*;

#[test]
fn simulate_writes_jsonl_and_csv_that_read_back_identically() {
    let dir = tmp();
    let sim = SimConfig {
        devices: 30,
        span_ms: 20 * 60 * 1000,
        anomaly_rate_per_hour: 3.0,
        ..SimConfig::default()
    };
    let j =
        simulate(&sim, &dir.path().join("d.jsonl"), Format::Jsonl, &dir.path().join("d.labels.json"), None)
            .unwrap();
    let c = simulate(&sim, &dir.path().join("d.csv"), Format::Csv, &dir.path().join("c.labels.json"), None)
        .unwrap();
    assert_eq!(j.events, c.events);
    assert_eq!(j.labels, c.labels);
    assert!(!j.labels.is_empty());
    // Ground truth is a JSON list with every field.
    let labels: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("d.labels.json")).unwrap()).unwrap();
    assert_eq!(labels.as_array().unwrap().len(), j.labels.len());
    assert!(labels[0]["kind"].is_string() && labels[0]["start_ms"].is_u64());
    // 30 devices x 3 metrics x 1200 samples, minus dropouts.
    assert!(j.events <= 30 * 3 * 1200 && j.events > 30 * 3 * 1100, "{}", j.events);
    let (sj, cj) = run(&config(SourceConfig::Jsonl { paths: vec![dir.path().join("d.jsonl")] }, 2));
    let (sc, cc) = run(&config(SourceConfig::Csv { paths: vec![dir.path().join("d.csv")] }, 2));
    assert_eq!((sj.records_in, sc.records_in), (j.events, c.events));
    assert_eq!(alert_view(&cj), alert_view(&cc));
}

#[test]
fn same_seed_same_dataset() {
    let dir = tmp();
    let sim = SimConfig { devices: 5, span_ms: 5 * 60 * 1000, ..SimConfig::default() };
    let a = dir.path().join("a.jsonl");
    let b = dir.path().join("b.jsonl");
    simulate(&sim, &a, Format::Jsonl, &dir.path().join("a.l.json"), None).unwrap();
    simulate(&sim, &b, Format::Jsonl, &dir.path().join("b.l.json"), None).unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let other = SimConfig { seed: 43, ..sim };
    simulate(&other, &b, Format::Jsonl, &dir.path().join("b.l.json"), None).unwrap();
    assert_ne!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}

#[test]
fn nab_corpus_is_read_whole_at_two_workers() {
    let root = nab_root();
    assert!(root.join("data").is_dir(), "the NAB corpus is expected at {}", root.display());
    // Count data rows independently of the engine's reader: non-empty lines after the header.
    let mut rows = 0u64;
    let mut out_of_order = 0u64;
    let mut files = 0;
    for cat in std::fs::read_dir(root.join("data")).unwrap() {
        let cat = cat.unwrap().path();
        if !cat.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&cat).unwrap() {
            let f = f.unwrap().path();
            if f.extension().is_some_and(|e| e == "csv") {
                files += 1;
                let text = std::fs::read_to_string(&f).unwrap();
                let mut newest = "";
                for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
                    rows += 1;
                    // `YYYY-MM-DD HH:MM:SS` sorts as text.
                    let ts = line.split(',').next().unwrap();
                    if ts < newest {
                        out_of_order += 1;
                    }
                    newest = newest.max(ts);
                }
            }
        }
    }
    assert_eq!(files, 58);
    let mut cfg = config(SourceConfig::Nab { root }, 2);
    cfg.window = 3_600_000;
    let (summary, _) = run(&cfg);
    assert_eq!(summary.records_in, rows);
    assert_eq!(summary.dead_lettered, 0);
    // One file (machine_temperature_system_failure) steps back in time: with no allowed
    // lateness those rows are late, counted, not lost.
    assert!(out_of_order > 0);
    assert_eq!(summary.late, out_of_order);
    assert_eq!(summary.processed + summary.late, rows);
    let mut lenient = cfg.clone();
    lenient.lateness = 3_600_000;
    let (summary, _) = run(&lenient);
    assert_eq!((summary.late, summary.processed), (0, rows));
}

#[test]
fn csv_rfc3339_and_epoch_timestamps_mix() {
    let (_dir, path) = tmp_file(
        "m.csv",
        "ts,device,metric,value\n2024-01-01T00:00:00Z,a,temperature,50\n1704067201000,a,temperature,60\n",
    );
    let (summary, c) = run(&config(SourceConfig::Csv { paths: vec![path] }, 1));
    assert_eq!(summary.processed, 2);
    let alerts: Vec<_> = c.sorted_alerts().into_iter().filter(|a| &*a.key.source == "overheat").collect();
    assert_eq!(alerts.len(), 1, "overheat fires once for the window");
    assert_eq!(alerts[0].window_start, 1_704_067_200_000);
    assert_eq!(alerts[0].value, 60.0);
}
