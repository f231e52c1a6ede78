//! NAB's per-row result files (`results/<detector>/<category>/<detector>_<file>.csv`):
//! reading any detector's, and writing ours in the same layout.

use std::fmt::Write as _;
use std::path::Path;

use sensorflow_operators::timefmt::{format_datetime, parse_datetime};

use super::corpus::category_files;
use super::scorer::{row_worths, Profile};
use super::{format_err, io, FileOutput, NabError, Windows};

/// Reads a detector's per-row result files: `dir/<category>/<detector>_<file>.csv` with at
/// least `timestamp` and `anomaly_score` columns (NAB's results layout). The detector name
/// is the directory's name.
pub fn read_results(dir: &Path) -> Result<Vec<FileOutput>, NabError> {
    let detector = dir.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let prefix = format!("{detector}_");
    let mut outputs = Vec::new();
    for f in category_files(dir)? {
        let Some(data_name) = f.name.strip_prefix(&prefix) else { continue };
        if !f.name.ends_with(".csv") || f.name.ends_with("_scores.csv") {
            continue;
        }
        outputs.push(read_result_file(&f.path, &format!("{}/{data_name}", f.category))?);
    }
    if outputs.is_empty() {
        return Err(format_err(dir, format!("no result files named <category>/{prefix}<file>.csv")));
    }
    Ok(outputs)
}

fn read_result_file(path: &Path, file: &str) -> Result<FileOutput, NabError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').map(str::trim).collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let ts_col = col("timestamp").ok_or_else(|| format_err(path, "no timestamp column"))?;
    let score_col = col("anomaly_score").ok_or_else(|| format_err(path, "no anomaly_score column"))?;
    let value_col = col("value");
    let mut out =
        FileOutput { file: file.to_string(), timestamps: Vec::new(), values: Vec::new(), scores: Vec::new() };
    for (n, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split(',').collect();
        let bad = |what: &str| format_err(path, format!("line {}: {what}", n + 2));
        let ts = fields.get(ts_col).and_then(|t| parse_datetime(t)).ok_or_else(|| bad("bad timestamp"))?;
        let score: f64 =
            fields.get(score_col).and_then(|s| s.trim().parse().ok()).ok_or_else(|| bad("bad score"))?;
        if !score.is_finite() {
            return Err(bad("score is not finite"));
        }
        let value =
            value_col.and_then(|c| fields.get(c)).and_then(|v| v.trim().parse().ok()).unwrap_or(f64::NAN);
        out.timestamps.push(ts);
        out.values.push(value);
        out.scores.push(score);
    }
    Ok(out)
}

#[allow(clippy::needless_range_loop)] // several parallel columns share the row index
/// Writes a detector's outputs in NAB's per-row layout under `dir/<detector>/`, with the
/// label and, per profile, the worth of each row detected at that profile's threshold.
pub fn write_results(
    dir: &Path,
    detector: &str,
    outputs: &[FileOutput],
    windows: &Windows,
    scores: &[(Profile, f64)],
) -> Result<(), NabError> {
    for out in outputs {
        let (category, name) = out.file.split_once('/').unwrap_or(("", &out.file));
        let folder = dir.join(detector).join(category);
        std::fs::create_dir_all(&folder).map_err(io(&folder))?;
        let path = folder.join(format!("{detector}_{name}"));
        let w = windows.get(&out.file).map(Vec::as_slice).unwrap_or(&[]);
        let worths: Vec<Vec<f64>> = scores.iter().map(|(p, _)| row_worths(out, w, &p.costs)).collect();
        let mut text = String::from("timestamp,value,anomaly_score,label");
        for (p, _) in scores {
            let _ = write!(text, ",S(t)_{}", p.name);
        }
        text.push('\n');
        for i in 0..out.timestamps.len() {
            let ts = out.timestamps[i];
            let label = u8::from(w.iter().any(|&(s, e)| s <= ts && ts <= e));
            let stamp = format_datetime(ts);
            let stamp = stamp.trim_end_matches(".000Z").replace('T', " ");
            let _ = write!(text, "{stamp},{},{},{label}", out.values[i], out.scores[i]);
            for (k, (_, threshold)) in scores.iter().enumerate() {
                let worth = if out.scores[i] >= *threshold { worths[k][i] } else { 0.0 };
                let _ = write!(text, ",{worth}");
            }
            text.push('\n');
        }
        std::fs::write(&path, text).map_err(io(&path))?;
    }
    Ok(())
}
