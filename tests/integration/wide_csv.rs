//! Wide CSV input (issue 14 item 6): a timestamp column and a column per metric, any
//! delimiter, decimal commas with `;`, the device from the file name. Every expected value is
//! computed here from the rows the test writes, never by the reader under test.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use sensorflow::connectors::SourceConfig;

use crate::common::*;

/// 2024-01-01T00:00:00Z, epoch ms.
const T0: u64 = 1_704_067_200_000;
/// Rows per file, one a second.
const ROWS: u64 = 1200;
/// The rule's window.
const WINDOW_MS: u64 = 10_000;
const METRICS: [&str; 3] = ["temperature", "pressure", "vibration"];

/// One file's cells: `rows[i][m]` is metric `m` of row `i` as written (empty: missing).
struct Wide {
    device: String,
    rows: Vec<[String; 3]>,
}

/// A number written with a decimal comma.
fn comma(x: f64) -> String {
    format!("{x:.2}").replace('.', ",")
}

/// A device's rows: temperature hot (above 80) in the rows of `hot`, some cells empty, and
/// one vibration cell `n/a` at row `bad`.
fn wide_rows(device: &str, hot: &[(u64, u64)], bad: u64) -> Wide {
    let rows = (0..ROWS)
        .map(|i| {
            let is_hot = hot.iter().any(|&(a, b)| (a..b).contains(&i));
            let temp = if is_hot { 85.0 + (i % 5) as f64 * 1.25 } else { 20.0 + (i % 7) as f64 * 0.5 };
            // At most one empty temperature cell in any 10 rows: every window has a maximum.
            let temp = if i % 13 == 5 { String::new() } else { comma(temp) };
            let pressure = if i % 4 == 1 { String::new() } else { comma(1013.0 + (i % 11) as f64 * 0.25) };
            let vibration = match i {
                _ if i == bad => "n/a".to_string(),
                _ if i % 3 == 0 => String::new(),
                _ => comma(0.5 + (i % 9) as f64 * 0.01),
            };
            [temp, pressure, vibration]
        })
        .collect();
    Wide { device: device.to_string(), rows }
}

/// Writes `w` as `dir/<device>.csv`, `;`-separated, timestamps `YYYY-MM-DD HH:MM:SS`.
fn write_wide(dir: &Path, w: &Wide) -> PathBuf {
    let mut lines = vec![format!("Timestamp;{}", METRICS.join(";"))];
    for (i, cells) in w.rows.iter().enumerate() {
        let s = i as u64;
        let ts = format!("2024-01-01 {:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
        lines.push(format!("{ts};{}", cells.join(";")));
    }
    write_lines(dir, &format!("{}.csv", w.device), &lines)
}

/// The value a cell holds, if it holds a number.
fn number(cell: &str) -> Option<f64> {
    cell.replace(',', ".").parse().ok()
}

/// (kind, device, metric, window start, value) of the alerts rule `hot` (temperature max > 80
/// over 10 s windows) must give: fired at the first hot window of each run, cleared at the
/// first window after it.
fn expected_alerts(files: &[Wide]) -> BTreeSet<(String, String, String, u64, String)> {
    let mut want = BTreeSet::new();
    for w in files {
        let mut max = vec![f64::NEG_INFINITY; (ROWS / 10) as usize];
        for (i, cells) in w.rows.iter().enumerate() {
            if let Some(t) = number(&cells[0]) {
                max[i / 10] = max[i / 10].max(t);
            }
        }
        let mut hot = false;
        for (win, &m) in max.iter().enumerate() {
            let start = T0 + win as u64 * WINDOW_MS;
            if m > 80.0 && !hot {
                want.insert((
                    "fired".into(),
                    w.device.clone(),
                    "temperature".into(),
                    start,
                    format!("{m:.3}"),
                ));
            } else if m <= 80.0 && hot {
                want.insert((
                    "cleared".into(),
                    w.device.clone(),
                    "temperature".into(),
                    start,
                    format!("{m:.3}"),
                ));
            }
            hot = m > 80.0;
        }
    }
    want
}

/// A number from the summary line starting with `label`.
fn summary_count(stderr: &str, label: &str) -> u64 {
    let line =
        stderr.lines().find(|l| l.starts_with(label)).unwrap_or_else(|| panic!("no {label}: {stderr}"));
    line[label.len()..].split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn wide_semicolon_csv_same_alerts_and_counts_at_1_and_2_workers_with_a_bad_cell_dead_lettered() {
    let dir = tmp();
    let files =
        [wide_rows("press-4", &[(300, 335), (700, 712)], 500), wide_rows("press-5", &[(905, 960)], 77)];
    let paths: Vec<PathBuf> = files.iter().map(|w| write_wide(dir.path(), w)).collect();
    let rules = write_file(
        dir.path(),
        "rules.toml",
        "[[rule]]\nname = \"hot\"\nmetric = \"temperature\"\nfield = \"max\"\nop = \">\"\nvalue = 80.0\n",
    );
    let want = expected_alerts(&files);
    assert_eq!(want.len(), 6, "three hot runs, each fired and cleared: {want:?}");
    let cells: u64 = files.iter().flat_map(|w| &w.rows).flatten().filter(|c| !c.is_empty()).count() as u64;
    let mut seen = Vec::new();
    for workers in ["1", "2"] {
        let (alerts, dead) =
            (dir.path().join(format!("a{workers}.jsonl")), dir.path().join(format!("d{workers}.jsonl")));
        let out = sensorflow()
            .args(["run", "--source", "csv", "--input"])
            .args(&paths)
            .args(["--window", "10s", "--model", "none", "--workers", workers, "--rules"])
            .arg(&rules)
            .arg("--alerts")
            .arg(&alerts)
            .arg("--dead-letters")
            .arg(&dead)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{stderr}");
        // Every non-empty cell is counted: the bad one as a dead letter, the others as events.
        assert_eq!(summary_count(&stderr, "events in"), cells, "{stderr}");
        assert_eq!(summary_count(&stderr, "processed"), cells - 2, "{stderr}");
        assert_eq!(summary_count(&stderr, "dead-lettered"), 2, "{stderr}");
        assert_eq!(summary_count(&stderr, "late"), 0, "{stderr}");
        let got: BTreeSet<_> = std::fs::read_to_string(&alerts)
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                let s = |k: &str| v[k].as_str().unwrap().to_string();
                (
                    s("kind"),
                    s("device"),
                    s("metric"),
                    v["window_start"].as_u64().unwrap(),
                    format!("{:.3}", v["value"].as_f64().unwrap()),
                )
            })
            .collect();
        assert_eq!(got, want, "workers {workers}");
        let mut reasons: Vec<(String, String)> = std::fs::read_to_string(&dead)
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (v["reason"].as_str().unwrap().to_string(), v["raw"].as_str().unwrap().to_string())
            })
            .collect();
        reasons.sort();
        assert_eq!(reasons.len(), 2);
        for (reason, raw) in &reasons {
            assert_eq!(reason, r#"column "vibration": "n/a" is not a number"#);
            assert!(raw.ends_with(";n/a"), "the dead letter carries its line: {raw}");
        }
        seen.push(got);
    }
    assert_eq!(seen[0], seen[1]);
}

#[test]
fn wide_csv_header_without_a_timestamp_column_is_a_clear_error() {
    let (_dir, path) = tmp_file("plant.csv", "when|temp|flow\n1|2|3\n");
    let out = sensorflow().args(["run", "--source", "csv", "--input"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("plant.csv")
            && stderr.contains("no timestamp column")
            && stderr.contains(r#"["when", "temp", "flow"]"#),
        "{stderr}"
    );
}

#[test]
fn nab_file_read_as_wide_csv_is_one_device_named_by_the_file_with_metric_value() {
    let path = nab_root().join("data/artificialNoAnomaly/art_daily_no_noise.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    let values: Vec<f64> = text
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    let top = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let dir = tmp();
    let rules = write_file(
        dir.path(),
        "rules.toml",
        &format!(
            "[[rule]]\nname = \"top\"\nmetric = \"value\"\nfield = \"max\"\nop = \">=\"\nvalue = {top}\n"
        ),
    );
    for workers in [1, 2] {
        let mut cfg = config(SourceConfig::Csv { paths: vec![path.clone()] }, workers);
        cfg.window = 3_600_000;
        cfg.model = "none".into();
        cfg.rules = Some(rules.clone());
        let (summary, c) = run(&cfg);
        assert_eq!(
            (summary.records_in, summary.processed, summary.dead_lettered),
            (values.len() as u64, values.len() as u64, 0)
        );
        let alerts = c.sorted_alerts();
        assert!(!alerts.is_empty());
        for a in &alerts {
            assert_eq!((&*a.device, &*a.metric), ("art_daily_no_noise", "value"));
        }
    }
}
