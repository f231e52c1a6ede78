//! Writing a rig run: the wide CSV and the labels JSON.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use super::{FaultClass, FaultKind, RigError, RigRun, START_MS};

impl RigRun {
    /// Writes the wide CSV: `ts,<sensor>…,label`, one row per line, empty cells for missing
    /// values, `label` 1 on faulty rows and 0 elsewhere.
    pub fn write_csv<W: Write>(&self, mut w: W) -> std::io::Result<()> {
        writeln!(w, "ts,{},label", self.sensors.join(","))?;
        for row in &self.rows {
            write!(w, "{}", row.ts_ms)?;
            for v in &row.values {
                match v {
                    Some(v) => write!(w, ",{v}")?,
                    None => write!(w, ",")?,
                }
            }
            writeln!(w, ",{}", u8::from(row.anomalous()))?;
        }
        w.flush()
    }

    /// Writes the run as narrow JSON lines, one event per reading: `device` (as given),
    /// `metric` (the sensor), `ts`, `value` and `seq` (counting the device's events from 0).
    /// Missing readings are absent. This is what `sensorflow run --source jsonl` reads.
    pub fn write_jsonl<W: Write>(&self, device: &str, mut w: W) -> std::io::Result<()> {
        let device = serde_json::to_string(device).map_err(std::io::Error::other)?;
        let mut seq = 0u64;
        for row in &self.rows {
            for (name, v) in self.sensors.iter().zip(&row.values) {
                if let Some(v) = v {
                    writeln!(
                        w,
                        r#"{{"device":{device},"metric":"{name}","ts":{},"value":{v},"seq":{seq}}}"#,
                        row.ts_ms
                    )?;
                    seq += 1;
                }
            }
        }
        w.flush()
    }

    /// Writes the labels as JSON: rig, seed, interval, rows, warm-up, sensors with their σ, and
    /// every fault (kind, class, rows, timestamps, sensors by name, size in σ).
    pub fn write_labels<W: Write>(&self, mut w: W) -> std::io::Result<()> {
        let in_range = self.in_range_faults();
        let faults = self
            .faults
            .iter()
            .zip(in_range)
            .enumerate()
            .map(|(id, (f, in_range))| FaultLabel {
                id,
                kind: f.kind,
                class: f.kind.class(),
                start_row: f.start_row,
                end_row: f.end_row,
                start_ms: START_MS + f.start_row as u64 * self.interval_ms,
                end_ms: START_MS + f.end_row as u64 * self.interval_ms,
                sensors: f.sensors.iter().map(|&j| self.sensors[j]).collect(),
                size_sigma: f.size_sigma,
                in_range,
            })
            .collect();
        let file = LabelFile {
            rig: self.shape.name(),
            seed: self.seed,
            interval_ms: self.interval_ms,
            rows: self.rows.len(),
            warmup_rows: self.warmup_rows,
            sensors: &self.sensors,
            noise: &self.noise,
            faults,
        };
        serde_json::to_writer_pretty(&mut w, &file).map_err(std::io::Error::other)?;
        writeln!(w)?;
        w.flush()
    }

    /// Writes the run to `path` — narrow JSON lines for a `.jsonl` or `.json` name (device
    /// `<rig>-<seed>`), the wide CSV otherwise — and, if given, the labels JSON to `labels`.
    pub fn save(&self, path: &Path, labels: Option<&Path>) -> Result<(), RigError> {
        let file = std::io::BufWriter::new(std::fs::File::create(path).map_err(io(path))?);
        let json = path.extension().is_some_and(|e| e == "jsonl" || e == "json");
        if json {
            self.write_jsonl(&format!("{}-{}", self.shape.name(), self.seed), file).map_err(io(path))?;
        } else {
            self.write_csv(file).map_err(io(path))?;
        }
        if let Some(path) = labels {
            let file = std::fs::File::create(path).map_err(io(path))?;
            self.write_labels(std::io::BufWriter::new(file)).map_err(io(path))?;
        }
        Ok(())
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RigError + '_ {
    move |source| RigError::Io { path: path.to_path_buf(), source }
}

#[derive(Serialize)]
struct LabelFile<'a> {
    rig: &'static str,
    seed: u64,
    interval_ms: u64,
    rows: usize,
    warmup_rows: usize,
    sensors: &'a [&'static str],
    noise: &'a [f64],
    faults: Vec<FaultLabel>,
}

#[derive(Serialize)]
struct FaultLabel {
    id: usize,
    kind: FaultKind,
    class: FaultClass,
    start_row: usize,
    end_row: usize,
    start_ms: u64,
    end_ms: u64,
    sensors: Vec<&'static str>,
    size_sigma: Option<f64>,
    in_range: bool,
}
