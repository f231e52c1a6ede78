//! `sensorflow train --data FILE...`: the learned device model (issue 14, item 3) trained on
//! a user's own recorded normal data, with the whole optimization chain (teacher → distilled
//! student → pruned → int8, `sensorflow_models::device::learned`).
//!
//! Every file is read with the engine's own parsers (JSON lines, CSV narrow or wide, binary
//! log), its events grouped per device into rows of `interval_ms` (each metric's mean over the
//! interval, as the engine's windows give them; a metric with no event in a row is missing,
//! never invented). Every device of every file is one recording of the same device type; the
//! metric columns are the union of the metrics seen, sorted by name (the engine's column
//! order). Rows a labels file marks anomalous, or whose `label` column is above 0, are left
//! out of training (a `label` column is never a metric).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sensorflow_models::device::learned::{
    run_chain, save_row_student, ChainOptions, ChainRow, Recording, RowCard, RowData, ROW_FORMAT,
};
use sensorflow_models::rows::RowLabels;
use sensorflow_operators::{Dictionary, Poll, SourceBatch};

use crate::connectors::{self, ReaderContext, SourceConfig};
use crate::Error;

/// What to train on and where to write.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainRows {
    /// Recorded files.
    pub inputs: Vec<PathBuf>,
    /// `jsonl`, `csv` or `log`; by default from each file's extension.
    pub format: Option<String>,
    /// Row interval, ms: the window hop the engine will run the model at.
    pub interval_ms: u64,
    /// Labels per file (a rig labels `.json` or a CSV with `ts,label`), in the order of
    /// `inputs`; one file applies to every input; none: every row is taken as normal.
    pub labels: Vec<PathBuf>,
    /// Output directory.
    pub dir: PathBuf,
    /// Name stem of the cards (`<name>-student`, `<name>-student-pruned`, `<name>-student-int8`).
    pub name: String,
    /// Chain settings.
    pub chain: ChainOptions,
}

/// What training wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainedRows {
    /// Rows read (device × interval).
    pub rows: usize,
    /// Rows left out as labelled anomalous.
    pub excluded: usize,
    /// Devices × files.
    pub recordings: usize,
    /// Metric columns.
    pub metrics: Vec<String>,
    /// Report rows, one per step.
    pub report: Vec<ChainRow>,
    /// Cards written (the int8 student last: what `run --device-model` should load).
    pub cards: Vec<PathBuf>,
}

fn format_of(path: &Path, given: Option<&str>) -> Result<SourceConfig, Error> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let format = given.unwrap_or(match ext {
        "jsonl" | "json" | "ndjson" => "jsonl",
        "csv" | "tsv" | "txt" => "csv",
        "sflog" | "log" | "bin" => "log",
        _ => "",
    });
    let paths = vec![path.to_path_buf()];
    match format {
        "jsonl" => Ok(SourceConfig::Jsonl { paths }),
        "csv" => Ok(SourceConfig::Csv { paths }),
        "log" => Ok(SourceConfig::Log { path: path.to_path_buf(), realtime: None }),
        other => Err(Error::Config(format!(
            "{}: format {other:?} is not jsonl, csv or log (give --format)",
            path.display()
        ))),
    }
}

/// One file's events: device → (row start → metric → (sum, count)).
type Buckets = BTreeMap<Arc<str>, BTreeMap<u64, BTreeMap<Arc<str>, (f64, u32)>>>;

fn read_file(path: &Path, format: Option<&str>, interval_ms: u64) -> Result<(Buckets, u64), Error> {
    let source = format_of(path, format)?;
    let dict = Dictionary::default();
    let ctx = ReaderContext::single(dict.clone(), None);
    let (mut readers, _) = connectors::open(&source, &ctx)?;
    let mut done = vec![false; readers.len()];
    let mut batch = SourceBatch::default();
    let mut buckets = Buckets::new();
    let mut dead = 0u64;
    while done.iter().any(|d| !d) {
        for (i, reader) in readers.iter_mut().enumerate() {
            if done[i] {
                continue;
            }
            batch.events.clear();
            batch.dead.clear();
            if let Poll::Done = reader.poll(&mut batch)? {
                done[i] = true;
            }
            dead += batch.dead.len() as u64;
            for e in &batch.events {
                if !e.value.is_finite() {
                    continue;
                }
                let row = e.ts - e.ts % interval_ms;
                let cell = buckets
                    .entry(dict.device_name(e.device))
                    .or_default()
                    .entry(row)
                    .or_default()
                    .entry(dict.metric_name(e.metric))
                    .or_insert((0.0, 0));
                cell.0 += e.value;
                cell.1 += 1;
            }
        }
    }
    Ok((buckets, dead))
}

/// Reads the files, builds the recordings and runs the chain, writing a card per student
/// step into `opts.dir`; `on` sees each report row as its step ends.
pub fn train_rows(opts: &TrainRows, on: &mut dyn FnMut(&ChainRow)) -> Result<TrainedRows, Error> {
    if opts.inputs.is_empty() {
        return Err(Error::Config("train --data needs at least one file".into()));
    }
    if opts.labels.len() > 1 && opts.labels.len() != opts.inputs.len() {
        return Err(Error::Config(format!(
            "{} labels files for {} data files (give one per data file, or one for all)",
            opts.labels.len(),
            opts.inputs.len()
        )));
    }
    if opts.interval_ms == 0 || opts.interval_ms > 86_400_000 {
        return Err(Error::Config(format!("interval {} ms: expected 1 ms ..= 1 d", opts.interval_ms)));
    }
    let mut files = Vec::new();
    let mut metric_set = std::collections::BTreeSet::new();
    for path in &opts.inputs {
        let (buckets, dead) = read_file(path, opts.format.as_deref(), opts.interval_ms)?;
        if dead > 0 {
            tracing::warn!(file = %path.display(), records = dead, "bad records skipped while reading training data");
        }
        for rows in buckets.values() {
            for cells in rows.values() {
                metric_set.extend(cells.keys().cloned());
            }
        }
        files.push(buckets);
    }
    // A `label` column (as `sensorflow rig write` adds) marks incidents; it is not a metric.
    let label: Arc<str> = Arc::from("label");
    let has_label = metric_set.remove(&label);
    let metrics: Vec<Arc<str>> = metric_set.into_iter().collect();
    let mut recordings = Vec::new();
    let (mut total, mut excluded) = (0usize, 0usize);
    for (f, buckets) in files.iter().enumerate() {
        let labels_path =
            opts.labels.get(f).or(if opts.labels.len() == 1 { opts.labels.first() } else { None });
        for rows in buckets.values() {
            let (Some(&first), Some(&last)) = (rows.keys().next(), rows.keys().next_back()) else { continue };
            let labels = labels_path
                .map(|p| RowLabels::load(p, first, None, 0).map_err(|e| Error::Config(e.to_string())))
                .transpose()?;
            let n = ((last - first) / opts.interval_ms + 1) as usize;
            let mut rec = Recording { rows: Vec::with_capacity(n), exclude: Vec::with_capacity(n) };
            for i in 0..n {
                let ts = first + i as u64 * opts.interval_ms;
                let cells = rows.get(&ts);
                rec.rows.push(
                    metrics
                        .iter()
                        .map(|m| cells.and_then(|c| c.get(m)).map(|&(s, c)| s / f64::from(c.max(1))))
                        .collect(),
                );
                let labelled = has_label && cells.and_then(|c| c.get(&label)).is_some_and(|&(s, _)| s > 0.0);
                let bad = labelled || labels.as_ref().is_some_and(|l| l.is_anomalous_at(ts));
                excluded += usize::from(bad);
                rec.exclude.push(bad);
            }
            total += n;
            recordings.push(rec);
        }
    }
    let names: Vec<String> = metrics.iter().map(|m| m.to_string()).collect();
    let data = RowData::build(
        &recordings,
        &names,
        opts.interval_ms,
        &sensorflow_models::device::DeviceConfig::default().ema_seconds,
        opts.chain.max_samples,
    )
    .map_err(|e| Error::Config(e.to_string()))?;
    let chain = run_chain(&data, &opts.chain, on);
    let mut cards = Vec::new();
    for (step, student) in &chain.students {
        let name = format!("{}-{step}", opts.name);
        let report = chain.rows.iter().find(|r| &r.step == step);
        let card = RowCard {
            format: ROW_FORMAT,
            kind: "row-student".into(),
            name: name.clone(),
            hidden: opts.chain.hidden,
            quantization: (step == "student-int8").then(|| "int8-symmetric".to_string()),
            schema: chain.schema.clone(),
            metrics: report.and_then(|r| serde_json::to_value(r).ok()),
        };
        save_row_student(&opts.dir, student, &card).map_err(|e| Error::Config(e.to_string()))?;
        cards.push(opts.dir.join(format!("{name}.json")));
    }
    let report_path = opts.dir.join(format!("{}-report.json", opts.name));
    let text = serde_json::to_string_pretty(&chain.rows).map_err(|e| Error::Config(e.to_string()))?;
    std::fs::write(&report_path, text).map_err(|e| Error::io(&report_path, e))?;
    Ok(TrainedRows {
        rows: total,
        excluded,
        recordings: recordings.len(),
        metrics: names,
        report: chain.rows,
        cards,
    })
}
