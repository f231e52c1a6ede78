//! Per-row evaluation of a real run (`sensorflow evaluate --rows`): labels from a rig labels
//! file or a CSV with `ts` and `label` columns, predictions from an alert file (rows between a
//! device episode's `fired` and its `cleared`) or a score file (rows whose state is `open`).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{events, EventCounts, RowCounts, RowsError};

/// One labelled run: a row per timestamp, which rows are anomalous, and how many leading rows
/// are warm-up (not scored).
#[derive(Clone, Debug, PartialEq)]
pub struct RowLabels {
    /// Row timestamps, epoch ms, increasing.
    pub ts: Vec<u64>,
    /// Whether each row is anomalous.
    pub anomalous: Vec<bool>,
    /// Leading rows not scored.
    pub warmup: usize,
}

#[derive(Deserialize)]
struct LabelFile {
    interval_ms: u64,
    warmup_rows: usize,
    faults: Vec<FaultSpan>,
    #[serde(default)]
    rows: Option<usize>,
}

#[derive(Deserialize)]
struct FaultSpan {
    start_row: usize,
    end_row: usize,
}

fn bad(path: &Path, why: impl Into<String>) -> RowsError {
    RowsError::BadFile { path: path.to_path_buf(), why: why.into() }
}

fn read(path: &Path) -> Result<String, RowsError> {
    std::fs::read_to_string(path).map_err(|e| RowsError::Io { path: path.to_path_buf(), source: e })
}

impl RowLabels {
    /// Reads labels: a rig labels file (`.json`, as `sensorflow rig write` writes; `rows`
    /// gives the run's length, else the end of the last fault) or a CSV whose header has `ts`
    /// and `label` columns (`label` 0 or 1; `warmup` leading rows skipped).
    pub fn load(path: &Path, start_ms: u64, rows: Option<usize>, warmup: usize) -> Result<Self, RowsError> {
        let text = read(path)?;
        if path.extension().is_some_and(|e| e == "json") {
            let file: LabelFile = serde_json::from_str(&text).map_err(|e| bad(path, e.to_string()))?;
            if file.interval_ms == 0 {
                return Err(bad(path, "interval_ms is 0"));
            }
            let n = rows
                .or(file.rows)
                .unwrap_or_else(|| file.faults.iter().map(|f| f.end_row).max().unwrap_or(0));
            let mut anomalous = vec![false; n];
            for f in &file.faults {
                if f.start_row >= f.end_row || f.end_row > n {
                    return Err(bad(
                        path,
                        format!("fault rows {}..{} outside 0..{n}", f.start_row, f.end_row),
                    ));
                }
                anomalous[f.start_row..f.end_row].iter_mut().for_each(|a| *a = true);
            }
            let ts = (0..n as u64).map(|i| start_ms + i * file.interval_ms).collect();
            return Ok(RowLabels { ts, anomalous, warmup: file.warmup_rows.min(n) });
        }
        let mut lines = text.lines();
        let header: Vec<&str> =
            lines.next().ok_or_else(|| bad(path, "empty file"))?.split(',').map(str::trim).collect();
        let col = |name: &str| {
            header
                .iter()
                .position(|h| h.eq_ignore_ascii_case(name))
                .ok_or_else(|| bad(path, format!("no {name:?} column")))
        };
        let (ts_col, label_col) = (col("ts")?, col("label")?);
        let (mut ts, mut anomalous) = (Vec::new(), Vec::new());
        for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let cells: Vec<&str> = line.split(',').map(str::trim).collect();
            let cell = |c: usize| cells.get(c).copied().unwrap_or("");
            let t: u64 = cell(ts_col)
                .parse()
                .map_err(|_| bad(path, format!("line {}: ts {:?}", i + 2, cell(ts_col))))?;
            if ts.last().is_some_and(|&last| t <= last) {
                return Err(bad(path, format!("line {}: ts {t} does not increase", i + 2)));
            }
            let label = match cell(label_col) {
                "0" => false,
                "1" => true,
                other => return Err(bad(path, format!("line {}: label {other:?} is not 0 or 1", i + 2))),
            };
            ts.push(t);
            anomalous.push(label);
        }
        let warmup = warmup.min(ts.len());
        Ok(RowLabels { ts, anomalous, warmup })
    }

    /// Whether timestamp `t` falls in a row labelled anomalous (false outside the run).
    pub fn is_anomalous_at(&self, t: u64) -> bool {
        let Some(i) = self.row_of(t) else { return false };
        // Past the last row: inside the run only within one row's step of it.
        let step = match self.ts.as_slice() {
            [a, b, ..] => b - a,
            _ => 1,
        };
        let inside = i + 1 < self.ts.len() || t - self.ts[i] < step;
        inside && self.anomalous.get(i).copied().unwrap_or(false)
    }

    /// Row index of timestamp `t` (the row whose interval holds it), if inside the run.
    fn row_of(&self, t: u64) -> Option<usize> {
        let i = self.ts.partition_point(|&x| x <= t);
        (i > 0).then(|| i - 1)
    }

    /// Row counts and events of `flagged`.
    pub fn score(&self, flagged: &[bool]) -> Result<(RowCounts, EventCounts), RowsError> {
        let rows = RowCounts::count(&self.anomalous, flagged, self.warmup)?;
        Ok((rows, EventCounts::count(&events(&self.anomalous, self.warmup), flagged)))
    }
}

#[derive(Deserialize)]
struct AlertLine {
    kind: String,
    device: String,
    rule: String,
    window_start: u64,
    #[serde(default)]
    episode_start: Option<u64>,
}

/// Flags from an alert file (JSON lines): for device `device` (every device when `None`) and
/// alerts whose rule is `source` (every rule when `None`), each row from a `fired` alert's
/// window up to (not including) its episode's `cleared` window, or to the end.
pub fn flags_from_alerts(
    labels: &RowLabels,
    path: &Path,
    device: Option<&str>,
    source: Option<&str>,
) -> Result<Vec<bool>, RowsError> {
    let text = read(path)?;
    let mut open: BTreeMap<(String, String, u64), usize> = BTreeMap::new();
    let mut flags = vec![false; labels.ts.len()];
    let mut spans = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let a: AlertLine =
            serde_json::from_str(line).map_err(|e| bad(path, format!("line {}: {e}", i + 1)))?;
        if device.is_some_and(|d| d != a.device) || source.is_some_and(|s| s != a.rule) {
            continue;
        }
        let key = (a.device.clone(), a.rule.clone(), a.episode_start.unwrap_or(a.window_start));
        let row = labels.row_of(a.window_start).unwrap_or(0);
        match a.kind.as_str() {
            "fired" => {
                open.insert(key, row);
            }
            "cleared" => {
                if let Some(start) = open.remove(&key) {
                    spans.push((start, row));
                }
            }
            other => return Err(bad(path, format!("line {}: kind {other:?}", i + 1))),
        }
    }
    spans.extend(open.into_values().map(|s| (s, flags.len())));
    let n = flags.len();
    for (s, e) in spans {
        flags[s.min(n)..e.min(n)].iter_mut().for_each(|f| *f = true);
    }
    Ok(flags)
}

/// Flags from a score file (`device,ts,score,state`): rows of `device` (every device when
/// `None`) whose state is `open`.
pub fn flags_from_scores(
    labels: &RowLabels,
    path: &Path,
    device: Option<&str>,
) -> Result<Vec<bool>, RowsError> {
    let text = read(path)?;
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some("device,ts,score,state") {
        return Err(bad(path, "header is not device,ts,score,state"));
    }
    let mut flags = vec![false; labels.ts.len()];
    for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let cells: Vec<&str> = line.split(',').collect();
        let [dev, ts, _, state] = cells[..] else {
            return Err(bad(path, format!("line {}: expected 4 fields", i + 2)));
        };
        if device.is_some_and(|d| d != dev) {
            continue;
        }
        let t: u64 = ts.parse().map_err(|_| bad(path, format!("line {}: ts {ts:?}", i + 2)))?;
        if state == "open" {
            if let Some(r) = labels.row_of(t) {
                flags[r] = true;
            }
        }
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Ten rows one second apart, rows 3, 4, 5 anomalous.
    fn csv_labels(dir: &tempfile::TempDir) -> RowLabels {
        let mut text = String::from("ts,x,label\n");
        for i in 0..10u64 {
            text.push_str(&format!("{},1.0,{}\n", 1000 * i, u8::from((3..6).contains(&i))));
        }
        RowLabels::load(&file(dir, "l.csv", &text), 0, None, 1).unwrap()
    }

    #[test]
    fn alerts_flag_rows_from_fired_to_cleared_and_score_by_hand() {
        let dir = tempfile::tempdir().unwrap();
        let labels = csv_labels(&dir);
        let alerts = file(
            &dir,
            "a.jsonl",
            concat!(
                r#"{"kind":"fired","device":"d","rule":"device-model","window_start":4000,"episode_start":4000}"#,
                "\n",
                r#"{"kind":"fired","device":"e","rule":"device-model","window_start":0,"episode_start":0}"#,
                "\n",
                r#"{"kind":"cleared","device":"d","rule":"device-model","window_start":7000,"episode_start":4000}"#,
                "\n"
            ),
        );
        let flags = flags_from_alerts(&labels, &alerts, Some("d"), None).unwrap();
        let want: Vec<bool> = (0..10).map(|i| (4..7).contains(&i)).collect();
        assert_eq!(flags, want);
        let (c, e) = labels.score(&flags).unwrap();
        // Rows 1..10 scored (one warm-up row): anomalous 3, 4, 5; flagged 4, 5, 6.
        assert_eq!((c.true_pos, c.false_pos, c.false_neg, c.true_neg), (2, 1, 1, 5));
        assert_eq!((e.events, e.detected, e.delays.clone()), (1, 1, vec![1]));
        // Device e's episode never clears: flagged to the end.
        assert!(flags_from_alerts(&labels, &alerts, Some("e"), None).unwrap().iter().all(|&f| f));
    }

    #[test]
    fn scores_flag_open_rows() {
        let dir = tempfile::tempdir().unwrap();
        let labels = csv_labels(&dir);
        let scores = file(
            &dir,
            "s.csv",
            "device,ts,score,state\nd,3000,2.0,pending\nd,4000,2.5,open\nx,5000,3.0,open\n",
        );
        let flags = flags_from_scores(&labels, &scores, Some("d")).unwrap();
        assert_eq!(flags.iter().filter(|&&f| f).count(), 1);
        assert!(flags[4]);
    }

    #[test]
    fn bad_label_files_are_clear_errors_naming_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        for (name, text, needle) in [
            ("a.csv", "ts,label\n0,0\n1000,2\n", "label \"2\""),
            ("b.csv", "ts,label\n1000,0\n1000,0\n", "does not increase"),
            ("c.csv", "time,label\n0,0\n", "no \"ts\" column"),
            ("d.csv", "", "empty file"),
            ("e.json", "{\"interval_ms\": 1000}", "warmup_rows"),
            (
                "f.json",
                r#"{"interval_ms":1000,"warmup_rows":1,"faults":[{"start_row":5,"end_row":3}],"rows":10}"#,
                "fault rows 5..3",
            ),
            ("g.json", r#"{"interval_ms":0,"warmup_rows":1,"faults":[]}"#, "interval_ms is 0"),
        ] {
            let err = RowLabels::load(&file(&dir, name, text), 0, None, 0).unwrap_err().to_string();
            assert!(err.contains(needle), "{name}: {err}");
        }
        let labels = csv_labels(&dir);
        let bad = file(&dir, "bad.jsonl", "{\"kind\":\"fired\"}\n");
        assert!(flags_from_alerts(&labels, &bad, None, None).unwrap_err().to_string().contains("line 1"));
        let bad = file(&dir, "bad.csv", "device,ts\n");
        assert!(flags_from_scores(&labels, &bad, None).unwrap_err().to_string().contains("header"));
    }
}
