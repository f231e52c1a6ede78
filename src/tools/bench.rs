//! `sensorflow bench`: the benchmark workloads for users, on data generated here.
//!
//! - W1: binary log → 1 s tumbling windows per device → rule `max > 80` → alert count.
//! - W2: JSON lines → parse → the same.
//! - W3: W2 plus the shipped anomaly model scoring every event's 64-value window.
//! - L: decision latency at a fixed offered rate, paced in real time (see [`latency`]).
//!
//! The W datasets have 1,000 devices and 10,000 events per second of event time; they are
//! written once per size into a data directory and reused. `benches/` runs the same workloads
//! with extra comparison rows (bare loops, 2 processes).

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sensorflow_operators::{Dictionary, Event};
use serde::Serialize;

use crate::config::{AlertOutput, RunConfig};
use crate::connectors::binlog::LogWriter;
use crate::connectors::simulator::SimConfig;
use crate::connectors::SourceConfig;
use crate::engine::summary::LatencySummary;
use crate::Error;

/// One measured configuration.
#[derive(Clone, Debug, Serialize)]
pub struct BenchRow {
    /// Workload and configuration.
    pub name: String,
    /// Worker threads.
    pub workers: usize,
    /// Events read.
    pub events: u64,
    /// Wall time of the run, seconds.
    pub seconds: f64,
    /// Events per second.
    pub events_per_sec: f64,
    /// Alerts fired (W) or decisions timed (L).
    pub alerts: u64,
    /// Ingest→alert latency, µs percentiles (L; W runs report them too).
    pub latency: Option<LatencySummary>,
}

/// The W datasets' values: a xorshift stream over 20.00 .. 81.99, so `max > 80` fires now
/// and then. Event `i` belongs to device `i % 1000` at `1_700_000_000_000 + i / 10` ms.
fn w_events(
    events: u64,
    mut each: impl FnMut(usize, u64, f64, u64) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut seq = vec![0u64; 1000];
    for i in 0..events {
        let device = (i % 1000) as usize;
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let value = 20.0 + (rng % 6200) as f64 / 100.0;
        each(device, 1_700_000_000_000 + i / 10, value, seq[device])?;
        seq[device] += 1;
    }
    Ok(())
}

fn finish_tmp(tmp: &Path, path: &Path) -> Result<PathBuf, Error> {
    std::fs::rename(tmp, path).map_err(|e| Error::io(path, e))?;
    Ok(path.to_path_buf())
}

/// The W2/W3 dataset of `events` JSON lines in `dir` (generated on first use).
pub fn json_dataset(dir: &Path, events: u64) -> Result<PathBuf, Error> {
    let path = dir.join(format!("w2-{events}.jsonl"));
    if path.exists() {
        return Ok(path);
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tmp = path.with_extension("tmp");
    let file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let mut w = BufWriter::with_capacity(1 << 22, file);
    w_events(events, |device, ts, value, seq| {
        writeln!(
            w,
            r#"{{"device":"dev-{device:06}","metric":"temperature","ts":{ts},"value":{value:.2},"seq":{seq}}}"#
        )
        .map_err(|e| Error::io(&tmp, e))
    })?;
    w.flush().map_err(|e| Error::io(&tmp, e))?;
    drop(w);
    finish_tmp(&tmp, &path)
}

/// The W1 dataset of `events` events as a binary log in `dir` (generated on first use).
pub fn log_dataset(dir: &Path, events: u64) -> Result<PathBuf, Error> {
    let path = dir.join(format!("w1-{events}.sflog"));
    if path.exists() {
        return Ok(path);
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tmp = path.with_extension("tmp");
    let dict = Dictionary::default();
    let devices: Vec<_> = (0..1000).map(|d| dict.device(&format!("dev-{d:06}"))).collect();
    let metric = dict.metric("temperature");
    let mut w = LogWriter::create(&tmp)?;
    let mut chunk = Vec::with_capacity(1 << 16);
    w_events(events, |device, ts, value, seq| {
        chunk.push(Event { device: devices[device], metric, ts, value, seq });
        if chunk.len() == 1 << 16 {
            w.write(&chunk, &dict)?;
            chunk.clear();
        }
        Ok(())
    })?;
    w.write(&chunk, &dict)?;
    w.finish()?;
    finish_tmp(&tmp, &path)
}

/// The W rule file (`temperature max > 80`) in `dir`.
pub fn hot_rules(dir: &Path) -> Result<PathBuf, Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let path = dir.join("w-rules.toml");
    let text =
        "[[rule]]\nname = \"hot\"\nmetric = \"temperature\"\nfield = \"max\"\nop = \">\"\nvalue = 80\n";
    std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
    Ok(path)
}

/// Runs a W workload once: `source` through 1 s windows and `rules`, with `model`.
pub fn run_w(
    name: &str,
    source: SourceConfig,
    rules: &Path,
    workers: usize,
    model: &str,
) -> Result<BenchRow, Error> {
    let config = RunConfig {
        source,
        workers,
        window: 1000,
        rules: Some(rules.to_path_buf()),
        reload_rules: false,
        alerts: AlertOutput::None,
        model: model.into(),
        summary: false,
        ..RunConfig::default()
    };
    let s = crate::run(&config)?;
    // Generated data has no bad or late records: any would mean the run measured something else.
    if !s.balanced() || s.dead_lettered > 0 || s.late > 0 {
        return Err(Error::Runtime(format!("{name}: unexpected dead-lettered or late events: {s}")));
    }
    Ok(BenchRow {
        name: name.into(),
        workers,
        events: s.records_in,
        seconds: s.elapsed.as_secs_f64(),
        events_per_sec: s.records_in as f64 / s.elapsed.as_secs_f64().max(1e-9),
        alerts: s.alerts_by_rule.values().map(|(f, _)| f).sum(),
        latency: s.latency,
    })
}

/// L: the simulator at `rate` events/s for `secs` seconds, paced in real time (3 metrics per
/// device every `tick_ms`; each tick's samples arrive together), through the default pipeline
/// plus a rule that fires and clears often (`temperature max > 21.5`). The latency runs from
/// the moment the source ingested the event that moved the watermark past an alert's window
/// to the moment the alert reached the sink.
pub fn latency(dir: &Path, rate: u64, secs: u64, tick_ms: u64, workers: usize) -> Result<BenchRow, Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let rules = dir.join("latency-rules.toml");
    let mut text = crate::config::rules::DEFAULT_RULES.to_string();
    text.push_str(
        "\n[[rule]]\nname = \"warm\"\nmetric = \"temperature\"\nfield = \"max\"\nop = \">\"\nvalue = 21.5\n",
    );
    std::fs::write(&rules, text).map_err(|e| Error::io(&rules, e))?;
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let tick = tick_ms.max(1);
    let sim = SimConfig {
        devices: (rate * tick / 3000).max(1),
        interval_ms: tick,
        span_ms: secs * 1000,
        start_ms: now / 1000 * 1000 + 1000,
        realtime_speed: Some(1.0),
        ..SimConfig::default()
    };
    let config = RunConfig {
        source: SourceConfig::Simulator(sim),
        workers,
        window: 1000,
        rules: Some(rules),
        reload_rules: false,
        alerts: AlertOutput::None,
        summary: false,
        ..RunConfig::default()
    };
    let s = crate::run(&config)?;
    Ok(BenchRow {
        name: format!("L at {rate} events/s, {tick} ms ticks"),
        workers,
        events: s.records_in,
        seconds: s.elapsed.as_secs_f64(),
        events_per_sec: s.records_in as f64 / s.elapsed.as_secs_f64().max(1e-9),
        alerts: s.latency.map_or(0, |l| l.count),
        latency: s.latency,
    })
}

/// Prints rows as a table.
pub fn print_table(title: &str, rows: &[BenchRow]) {
    println!("\n{title}");
    println!(
        "{:<36} {:>7} {:>12} {:>8} {:>12} {:>9} {:>9} {:>9}",
        "workload", "workers", "events", "secs", "events/s", "p50 ms", "p99 ms", "p99.9 ms"
    );
    for r in rows {
        let ms = |f: fn(&LatencySummary) -> u64| {
            r.latency.as_ref().map_or("-".to_string(), |l| format!("{:.3}", f(l) as f64 / 1000.0))
        };
        println!(
            "{:<36} {:>7} {:>12} {:>8.3} {:>12.0} {:>9} {:>9} {:>9}",
            r.name,
            r.workers,
            r.events,
            r.seconds,
            r.events_per_sec,
            ms(|l| l.p50_us),
            ms(|l| l.p99_us),
            ms(|l| l.p999_us)
        );
    }
}
