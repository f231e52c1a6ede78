//! `sensorflow simulate`: writes the simulator's output as a labelled dataset.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use sensorflow_operators::{Dictionary, PartitionReader, Poll, SourceBatch};

use crate::connectors::simulator::{Label, SimConfig, SimReader};
use crate::Error;

/// Output format of a dataset file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// CSV with a `device,metric,ts,value,seq` header.
    Csv,
}

impl Format {
    /// Guesses the format from a file extension (`.csv` → CSV, else JSON lines).
    pub fn from_path(path: &Path) -> Self {
        if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) {
            Format::Csv
        } else {
            Format::Jsonl
        }
    }
}

/// What `simulate` wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// Events written.
    pub events: u64,
    /// Anomalies injected.
    pub labels: Vec<Label>,
    /// Where the labels went.
    pub labels_path: PathBuf,
}

/// The default labels path beside a dataset: `data.jsonl` → `data.labels.json`.
pub fn labels_path_for(out: &Path) -> PathBuf {
    let stem = out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "data".into());
    out.with_file_name(format!("{stem}.labels.json"))
}

/// Simulates `config` (optionally at most `max_events`) into `out`, with ground truth in `labels_out`.
pub fn simulate(
    config: &SimConfig,
    out: &Path,
    format: Format,
    labels_out: &Path,
    max_events: Option<u64>,
) -> Result<Written, Error> {
    config.validate()?;
    let dict = Dictionary::default();
    let labels = crate::connectors::simulator::Labels::default();
    let mut reader = SimReader::new(config, 0, 1, max_events.unwrap_or(u64::MAX), &dict, labels.clone());
    let file = File::create(out).map_err(|e| Error::io(out, e))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let io = |e| Error::io(out, e);
    if format == Format::Csv {
        writeln!(w, "device,metric,ts,value,seq").map_err(io)?;
    }
    let mut batch = SourceBatch::default();
    let mut events = 0u64;
    let mut names: std::collections::HashMap<u64, String> = std::collections::HashMap::new();
    loop {
        batch.events.clear();
        let poll = reader.poll(&mut batch)?;
        for e in &batch.events {
            let device = names.entry(e.device.0).or_insert_with(|| dict.device_name(e.device).to_string());
            let metric = dict.metric_name(e.metric);
            match format {
                Format::Jsonl => writeln!(
                    w,
                    r#"{{"device":"{device}","metric":"{metric}","ts":{},"value":{},"seq":{}}}"#,
                    e.ts, e.value, e.seq
                ),
                Format::Csv => writeln!(w, "{device},{metric},{},{},{}", e.ts, e.value, e.seq),
            }
            .map_err(io)?;
        }
        events += batch.events.len() as u64;
        match poll {
            Poll::Done => break,
            Poll::Ready => {}
            Poll::Pending => std::thread::sleep(std::time::Duration::from_millis(2)),
        }
    }
    w.flush().map_err(io)?;
    let labels = labels.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let text = serde_json::to_string_pretty(&labels).map_err(|e| Error::Runtime(e.to_string()))?;
    std::fs::write(labels_out, text).map_err(|e| Error::io(labels_out, e))?;
    Ok(Written { events, labels, labels_path: labels_out.to_path_buf() })
}
