//! `sensorflow bench`: the benchmark workloads for users, on data generated here.
//!
//! - W1: binary log → 1 s tumbling windows per device → rule `max > 80` → alert count.
//! - W2: JSON lines → parse → the same.
//! - W3: W2 plus the shipped anomaly model scoring every event's 64-value window.
//! - L: decision latency at a fixed offered rate, paced in real time (see [`latency`]).
//! - M: memory with many devices: distinct devices with one event each through W3, each run in
//!   a child process so its peak resident memory (VmHWM) is its own; two fleet sizes give the
//!   bytes each further series costs.
//!
//! The W datasets have 1,000 devices and 10,000 events per second of event time; they are
//! written once per size into a data directory and reused. `benches/` runs the same workloads
//! with extra comparison rows (bare loops, 2 processes).

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sensorflow_operators::{Dictionary, Event};
use serde::Serialize;

use crate::config::{AlertOutput, RunConfig};
use crate::connectors::binlog::LogWriter;
use crate::connectors::simulator::SimConfig;
use crate::connectors::SourceConfig;
use crate::engine::summary::LatencySummary;
use crate::observe::progress::Meter;
use crate::Error;

/// One of the benchmark workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Binary log → windows → rule.
    W1,
    /// JSON lines → windows → rule.
    W2,
    /// W2 plus the shipped anomaly model.
    W3,
    /// Decision latency at fixed offered rates.
    L,
    /// Peak memory and bytes per series with many devices.
    M,
}

impl Workload {
    /// The workload called `name` on the command line (`w1`, `w2`, `w3`, `l`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "w1" => Some(Workload::W1),
            "w2" => Some(Workload::W2),
            "w3" => Some(Workload::W3),
            "l" => Some(Workload::L),
            "m" => Some(Workload::M),
            _ => None,
        }
    }

    /// Its command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Workload::W1 => "w1",
            Workload::W2 => "w2",
            Workload::W3 => "w3",
            Workload::L => "l",
            Workload::M => "m",
        }
    }
}

/// Everything `sensorflow bench` needs.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchConfig {
    /// Workloads, in order.
    pub workloads: Vec<Workload>,
    /// Events per W run.
    pub events: u64,
    /// Worker counts each W workload runs at.
    pub workers: Vec<usize>,
    /// Offered rates for L, events/s.
    pub rates: Vec<u64>,
    /// Seconds per L rate.
    pub secs: u64,
    /// L: simulator tick, ms.
    pub tick_ms: u64,
    /// Where generated datasets are kept.
    pub dir: PathBuf,
    /// The JSON result file.
    pub out: PathBuf,
}

/// `sensorflow bench`: runs every workload (W at each worker count, L at each rate) with
/// progress on stderr, prints the table on stdout and writes the rows, with the machine's CPU
/// and core count, as JSON to `config.out`.
pub fn run_bench(config: &BenchConfig) -> Result<Vec<BenchRow>, Error> {
    let mut rows = Vec::new();
    let rules = hot_rules(&config.dir)?;
    let planned: usize = config
        .workloads
        .iter()
        .map(|w| match w {
            Workload::L => config.rates.len(),
            Workload::M => 2 * config.workers.len(),
            _ => config.workers.len(),
        })
        .sum();
    let mut meter = Meter::new("bench", Some(planned as u64), "rows", Duration::ZERO);
    for &w in &config.workloads {
        let before = rows.len();
        match w {
            Workload::W1 => {
                let path = log_dataset(&config.dir, config.events)?;
                for &n in &config.workers {
                    let source = SourceConfig::Log { path: path.clone(), realtime: None };
                    rows.push(run_w("W1 log → windows → rule", source, &rules, n, "none")?);
                }
            }
            Workload::W2 | Workload::W3 => {
                let path = json_dataset(&config.dir, config.events)?;
                let (name, model) = if w == Workload::W2 {
                    ("W2 JSON → windows → rule", "none")
                } else {
                    ("W3 W2 + anomaly model", "default")
                };
                for &n in &config.workers {
                    let source = SourceConfig::Jsonl { paths: vec![path.clone()] };
                    rows.push(run_w(name, source, &rules, n, model)?);
                }
            }
            Workload::L => {
                for &rate in &config.rates {
                    rows.push(latency(&config.dir, rate, config.secs, config.tick_ms, 2)?);
                }
            }
            Workload::M => {
                // --events devices (at most 3 M), and a tenth as many for the difference.
                let large = config.events.clamp(10_000, 3_000_000);
                let small = large / 10;
                for &n in &config.workers {
                    let a = memory_run(&config.dir, &rules, small, n)?;
                    let mut b = memory_run(&config.dir, &rules, large, n)?;
                    if let (Some(x), Some(y)) = (a.peak_rss_bytes, b.peak_rss_bytes) {
                        b.bytes_per_series = Some((y as f64 - x as f64) / (large - small) as f64);
                    }
                    rows.push(a);
                    rows.push(b);
                }
            }
        }
        if rows.len() > before {
            meter.set(rows.len() as u64, || format!("{} done", w.name()));
        }
    }
    meter.finish();
    print_table("sensorflow bench", &rows);
    write_json(&config.out, &rows)?;
    Ok(rows)
}

/// The CPU model named in `/proc/cpuinfo` (empty where there is none).
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_default()
}

/// Writes `rows` with the machine and version to `out` (creating its folder).
fn write_json(out: &Path, rows: &[BenchRow]) -> Result<(), Error> {
    let json = serde_json::json!({
        "machine": { "cpu": cpu_model(), "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0) },
        "version": env!("CARGO_PKG_VERSION"),
        "rows": rows,
    });
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let text =
        serde_json::to_string_pretty(&json).map_err(|e| Error::Runtime(format!("bench results: {e}")))?;
    std::fs::write(out, text).map_err(|e| Error::io(out, e))
}

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
    /// Peak resident memory of the run's own process (M), bytes.
    pub peak_rss_bytes: Option<u64>,
    /// Bytes each further device's series costs (M: the difference of two fleet sizes).
    pub bytes_per_series: Option<f64>,
}

/// The M dataset: `devices` distinct devices with one event each, 10,000 per second of event
/// time (generated on first use).
pub fn devices_dataset(dir: &Path, devices: u64) -> Result<PathBuf, Error> {
    cached_dataset(dir, &format!("m-{devices}.jsonl"), |tmp| {
        let file = std::fs::File::create(tmp).map_err(|e| Error::io(tmp, e))?;
        let mut w = BufWriter::with_capacity(1 << 22, file);
        for i in 0..devices {
            writeln!(
                w,
                r#"{{"device":"dev-{i:08}","metric":"temperature","ts":{},"value":{:.2},"seq":0}}"#,
                1_700_000_000_000 + i / 10,
                20.0 + (i % 100) as f64 / 10.0
            )
            .map_err(|e| Error::io(tmp, e))?;
        }
        w.flush().map_err(|e| Error::io(tmp, e))
    })
}

/// One M run: this binary's `run` over `devices` one-event devices with the default model and
/// the W rule (`max > 80`, which these values never pass: the state measured is the devices'
/// own, not open alerts'), in a child process; its summary gives the events/s and peak memory.
fn memory_run(dir: &Path, rules: &Path, devices: u64, workers: usize) -> Result<BenchRow, Error> {
    let path = devices_dataset(dir, devices)?;
    let exe =
        std::env::current_exe().map_err(|e| Error::Runtime(format!("bench: this program's path: {e}")))?;
    let out = std::process::Command::new(&exe)
        .args(["run", "--source", "jsonl", "--window", "1s", "--model", "default", "--alerts", "none"])
        .arg("--input")
        .arg(&path)
        .arg("--rules")
        .arg(rules)
        .arg("--workers")
        .arg(workers.to_string())
        .output()
        .map_err(|e| Error::Runtime(format!("bench: starting {}: {e}", exe.display())))?;
    let text = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(Error::Runtime(format!("bench: the memory run failed: {text}")));
    }
    let field = |label: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(label))?
            .trim_start_matches(label)
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let (Some(events), Some(rate), Some(secs)) = (field("events in"), field("events/s"), field("elapsed"))
    else {
        return Err(Error::Runtime(format!("bench: no summary from the memory run: {text}")));
    };
    Ok(BenchRow {
        name: format!("M {devices} one-event devices + model"),
        workers,
        events: events as u64,
        seconds: secs,
        events_per_sec: rate,
        alerts: 0,
        latency: None,
        peak_rss_bytes: field("peak memory (VmHWM)").map(|mb| (mb * 1e6) as u64),
        bytes_per_series: None,
    })
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

/// `dir/name`, generated on first use: `write` fills a temporary file beside it, which is
/// renamed into place only once complete, so an interrupted run never leaves a partial dataset
/// that later runs would take as generated.
fn cached_dataset(
    dir: &Path,
    name: &str,
    write: impl FnOnce(&Path) -> Result<(), Error>,
) -> Result<PathBuf, Error> {
    let path = dir.join(name);
    if path.exists() {
        return Ok(path);
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tmp = path.with_extension("tmp");
    write(&tmp)?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    Ok(path)
}

/// The W2/W3 dataset of `events` JSON lines in `dir` (generated on first use).
pub fn json_dataset(dir: &Path, events: u64) -> Result<PathBuf, Error> {
    cached_dataset(dir, &format!("w2-{events}.jsonl"), |tmp| {
        let file = std::fs::File::create(tmp).map_err(|e| Error::io(tmp, e))?;
        let mut w = BufWriter::with_capacity(1 << 22, file);
        w_events(events, |device, ts, value, seq| {
            writeln!(
                w,
                r#"{{"device":"dev-{device:06}","metric":"temperature","ts":{ts},"value":{value:.2},"seq":{seq}}}"#
            )
            .map_err(|e| Error::io(tmp, e))
        })?;
        w.flush().map_err(|e| Error::io(tmp, e))
    })
}

/// The W1 dataset of `events` events as a binary log in `dir` (generated on first use).
pub fn log_dataset(dir: &Path, events: u64) -> Result<PathBuf, Error> {
    cached_dataset(dir, &format!("w1-{events}.sflog"), |tmp| {
        let dict = Dictionary::default();
        let devices: Vec<_> = (0..1000).map(|d| dict.device(&format!("dev-{d:06}"))).collect();
        let metric = dict.metric("temperature");
        let mut w = LogWriter::create(tmp)?;
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
        Ok(())
    })
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
        peak_rss_bytes: None,
        bytes_per_series: None,
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
        peak_rss_bytes: None,
        bytes_per_series: None,
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
        if let Some(peak) = r.peak_rss_bytes {
            let per =
                r.bytes_per_series.map_or(String::new(), |b| format!(", {b:.0} bytes per further series"));
            println!(
                "{:<36} {:>7} {:>12} {:>8.3} {:>12.0}   peak memory {:.1} MB{per}",
                r.name,
                r.workers,
                r.events,
                r.seconds,
                r.events_per_sec,
                peak as f64 / 1e6
            );
            continue;
        }
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
