//! `sensorflow record`: any source's events into a binary log (`connectors::binlog`).

use std::path::Path;
use std::time::{Duration, Instant};

use sensorflow_operators::{Dictionary, Poll, SourceBatch};

use crate::connectors::binlog::LogWriter;
use crate::connectors::{self, ReaderContext, SourceConfig};
use crate::sinks::Diverted;
use crate::Error;

/// What a recording wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recorded {
    /// Events written.
    pub events: u64,
    /// Chunks written (events and names).
    pub chunks: u64,
    /// Records the source rejected (not written; the first few are printed).
    pub dead_lettered: u64,
    /// Bytes on disk.
    pub bytes: u64,
}

/// Reads every partition of `source` in one thread and writes its events to `out`.
pub fn record(source: &SourceConfig, out: &Path, max_events: Option<u64>) -> Result<Recorded, Error> {
    let dict = Dictionary::default();
    let ctx = ReaderContext::single(dict.clone(), max_events);
    let (mut readers, _) = connectors::open(source, &ctx)?;
    let mut done = vec![false; readers.len()];
    let mut writer = LogWriter::create(out)?;
    let mut batch = SourceBatch::default();
    let mut pending: Vec<sensorflow_operators::Event> = Vec::with_capacity(1 << 16);
    let mut stats = Recorded::default();
    let mut dead = Diverted::new(None, "record: skipped bad record", 10)?;
    let mut last_report = Instant::now();
    let meter_started = Instant::now();
    let mut meter = crate::observe::progress::Meter::new("record", None, "events", Duration::from_secs(5));
    while done.iter().any(|d| !d) {
        let mut progressed = false;
        for (i, reader) in readers.iter_mut().enumerate() {
            if done[i] {
                continue;
            }
            batch.events.clear();
            batch.dead.clear();
            match reader.poll(&mut batch)? {
                Poll::Done => done[i] = true,
                Poll::Ready => progressed = true,
                Poll::Pending => {}
            }
            for d in &batch.dead {
                dead.dead_letter(d)?;
            }
            pending.extend_from_slice(&batch.events);
            if pending.len() >= 1 << 16 {
                writer.write(&pending, &dict)?;
                stats.events += pending.len() as u64;
                pending.clear();
            }
        }
        if !progressed {
            std::thread::sleep(Duration::from_millis(1));
        }
        if last_report.elapsed() >= Duration::from_millis(200) {
            last_report = Instant::now();
            let secs = meter_started.elapsed().as_secs_f64().max(1e-3);
            let n = stats.events + pending.len() as u64;
            meter.set(n, || format!("{:.2}M events/s", n as f64 / secs / 1e6));
        }
    }
    writer.write(&pending, &dict)?;
    stats.events += pending.len() as u64;
    meter.finish();
    let (_, chunks) = writer.finish()?;
    stats.chunks = chunks;
    stats.dead_lettered = dead.seen();
    stats.bytes = std::fs::metadata(out).map_err(|e| Error::io(out, e))?.len();
    Ok(stats)
}
