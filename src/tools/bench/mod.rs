//! `sensorflow bench`: the benchmark workloads for users, on data generated here, each beside
//! the limit it is measured against, in the same process and run (issue 16: machines differ by
//! ±30 %, so what compares across machines is engine ÷ limit).
//!
//! - W1: binary log → 1 s tumbling windows per device → rule `max > 80` → alert count; its
//!   limit is the window aggregation alone over the same events already in memory
//!   ([`bare::w1`]).
//! - W2: JSON lines → parse → the same; its limit is a parser specialised to the file's shape
//!   plus the same aggregation over the file already in memory ([`bare::w2`]).
//! - W3: W2 plus the shipped anomaly model scoring every event's 64-value window; its limit is
//!   the anomaly operator alone over the same events already in memory ([`alone`]).
//! - S: the alert storm (W2 with a quarter of the windows alerting), beside W2's limit.
//! - L: decision latency at a fixed offered rate, paced in real time (see [`latency`]).
//! - M: memory with many devices: distinct devices with one event each through W3, each run in
//!   a child process so its peak resident memory (VmHWM) is its own; two fleet sizes give the
//!   bytes each further series costs.
//!
//! The limits hold their input in memory (W2: the file, about 91 bytes per event; W1 and W3:
//! the decoded events, 40 bytes each, W3 a copy per run), so `--events` is bounded by memory:
//! 20 M events need about 2 GB.
//!
//! W1, W2 and W3 read the W2 reference shape ([`data`]: 1,000 devices, 10,000 events per
//! second of event time, about one alert per 20,000 events), seeded. Each W configuration runs
//! `repeat` times, engine and limit in turn, and the row holds the median with the minimum and
//! maximum; the JSON holds every run.
//! - cluster: W1 and W2 at 2 processes × 1 worker (`sensorflow cluster` on loopback) beside 1
//!   process × 2 workers, in turn in the same run ([`cluster_rows`]).

pub mod alone;
pub mod bare;
pub mod data;

pub use data::{devices_dataset, json_dataset, log_dataset, reference_events, storm_dataset};

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sensorflow_operators::{Dictionary, Event};
use serde::Serialize;

use crate::config::{AlertOutput, RunConfig};
use crate::connectors::simulator::SimConfig;
use crate::connectors::SourceConfig;
use crate::engine::summary::{Counts, LatencySummary};
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
    /// The alert storm: W2's pipeline on data where a quarter of the windows alert.
    Storm,
    /// W1 and W2 at 2 processes × 1 worker (a local timely cluster), beside 1 process × 2
    /// workers in the same run.
    Cluster,
    /// Decision latency at fixed offered rates.
    L,
    /// Peak memory and bytes per series with many devices.
    M,
}

impl Workload {
    /// The workload called `name` on the command line (`w1`, `w2`, `w3`, `storm`, `l`, `m`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "w1" => Some(Workload::W1),
            "w2" => Some(Workload::W2),
            "w3" => Some(Workload::W3),
            "storm" => Some(Workload::Storm),
            "cluster" => Some(Workload::Cluster),
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
            Workload::Storm => "storm",
            Workload::Cluster => "cluster",
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
    /// Runs of each W configuration (engine and limit each; the row holds the median).
    pub repeat: usize,
    /// Seed of the W2 reference data.
    pub seed: u64,
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
            Workload::Cluster => 2,
            _ => config.workers.len(),
        })
        .sum();
    let mut meter = Meter::new("bench", Some(planned as u64), "rows", Duration::ZERO);
    for &w in &config.workloads {
        let before = rows.len();
        match w {
            Workload::W1 | Workload::W2 | Workload::W3 | Workload::Storm => {
                for row in w_rows(config, w, &rules)? {
                    rows.push(row);
                    meter.set(rows.len() as u64, || format!("{} at {} workers", w.name(), rows.len()));
                }
            }
            Workload::Cluster => {
                for row in cluster_rows(config, &rules)? {
                    rows.push(row);
                    meter.set(rows.len() as u64, || "cluster".into());
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

/// A W workload at each worker count: `repeat` runs of the engine, each after a run of the
/// workload's limit (so a slow spell of the machine touches both), the medians and their ratio.
fn w_rows(config: &BenchConfig, w: Workload, rules: &Path) -> Result<Vec<BenchRow>, Error> {
    let (dir, events, seed) = (&config.dir, config.events, config.seed);
    let mut rows = Vec::new();
    match w {
        Workload::W1 => {
            let path = log_dataset(dir, events, seed)?;
            let decoded = read_log(&path)?;
            for &n in &config.workers {
                let source = SourceConfig::Log { path: path.clone(), realtime: None };
                let limit = || Ok(LimitRun::counted(bare::w1(&decoded, n)));
                let limit = ("aggregation over decoded events in memory", limit);
                rows.push(measure(config, "W1 log → windows → rule", n, rules, source, "none", limit)?);
            }
        }
        Workload::W2 | Workload::Storm => {
            let (path, name) = if w == Workload::W2 {
                (json_dataset(dir, events, seed)?, "W2 JSON → windows → rule")
            } else {
                (storm_dataset(dir, events)?, "storm: W2 with many alerts")
            };
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            for &n in &config.workers {
                let source = SourceConfig::Jsonl { paths: vec![path.clone()] };
                let limit = || Ok(LimitRun::counted(bare::w2(&bytes, n)?));
                let limit = ("shape-specialised parse + aggregation, file in memory", limit);
                rows.push(measure(config, name, n, rules, source, "none", limit)?);
            }
        }
        Workload::W3 => {
            let path = json_dataset(dir, events, seed)?;
            let parsed = {
                let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
                alone::parse_file(&bytes)?
            };
            let idle = RunConfig::default().state_idle_setting();
            for &n in &config.workers {
                let source = SourceConfig::Jsonl { paths: vec![path.clone()] };
                let limit = || {
                    let r = alone::run(&parsed, n, idle)?;
                    Ok(LimitRun {
                        events: r.events,
                        windows: None,
                        over: None,
                        scored: Some(r.scored),
                        elapsed: r.elapsed,
                    })
                };
                let limit = ("anomaly operator alone, events in memory", limit);
                rows.push(measure(config, "W3 W2 + anomaly model", n, rules, source, "default", limit)?);
            }
        }
        Workload::L | Workload::M | Workload::Cluster => {}
    }
    Ok(rows)
}

/// W1 and W2 at 2 processes × 1 worker (`sensorflow cluster`, this binary, on loopback) beside
/// 1 process × 2 workers, `repeat` times each in turn: both must read every event into the same
/// windows and fire the same alerts. A process's time starts with its first worker, once the
/// processes are connected, so process start is not counted (the cluster's time is its
/// slowest process's).
fn cluster_rows(config: &BenchConfig, rules: &Path) -> Result<Vec<BenchRow>, Error> {
    let (dir, events, seed) = (&config.dir, config.events, config.seed);
    let exe =
        std::env::current_exe().map_err(|e| Error::Runtime(format!("bench: this program's path: {e}")))?;
    let datasets = [
        (
            "W1 at 2 processes × 1 worker",
            "log",
            SourceConfig::Log { path: log_dataset(dir, events, seed)?, realtime: None },
        ),
        (
            "W2 at 2 processes × 1 worker",
            "jsonl",
            SourceConfig::Jsonl { paths: vec![json_dataset(dir, events, seed)?] },
        ),
    ];
    let mut rows = Vec::new();
    for (name, kind, source) in datasets {
        let path = match &source {
            SourceConfig::Log { path, .. } => path.clone(),
            SourceConfig::Jsonl { paths } => paths[0].clone(),
            _ => unreachable!("the cluster rows read a log or a JSON file"),
        };
        let mut threads = Vec::new();
        let mut cluster = Vec::new();
        for _ in 0..config.repeat.max(1) {
            threads.push(run_w(name, source.clone(), rules, 2, "none")?);
            cluster.push(cluster_run(&exe, dir, kind, &path, rules)?);
        }
        for (t, c) in threads.iter().zip(&cluster) {
            if !c.balanced()
                || c.records_in != t.events
                || Some(c.windows_closed) != t.windows
                || c.fired() != t.alerts
            {
                return Err(Error::Runtime(format!(
                    "bench: {name}: the cluster read {} events into {} windows and fired {} alerts \
                     (balanced: {}), 1 process × 2 workers {} into {:?} and {}: not the same work",
                    c.records_in,
                    c.windows_closed,
                    c.fired(),
                    c.balanced(),
                    t.events,
                    t.windows,
                    t.alerts
                )));
            }
        }
        let engine = Spread::of(cluster.iter().map(|c| c.events_per_sec()).collect());
        let lim = Spread::of(threads.iter().map(|t| t.events_per_sec).collect());
        let mut row = threads.swap_remove(0);
        row.name = name.into();
        row.seconds = row.events as f64 / engine.median.max(1e-9);
        row.events_per_sec = engine.median;
        row.ratio = Some(engine.median / lim.median.max(1e-9));
        row.spread = engine;
        row.latency = None;
        row.due_latency = None;
        row.limit = Some(Limit {
            name: "1 process × 2 workers, same run".into(),
            windows: row.windows,
            windows_over: None,
            scored: None,
            spread: lim,
        });
        rows.push(row);
    }
    Ok(rows)
}

/// One run of `sensorflow cluster --processes 2 --workers 1` over `path`: the processes'
/// counts summed.
fn cluster_run(exe: &Path, dir: &Path, kind: &str, path: &Path, rules: &Path) -> Result<Counts, Error> {
    let counts = dir.join("cluster-counts.json");
    let _ = std::fs::remove_file(&counts);
    let out = std::process::Command::new(exe)
        .args(["cluster", "--processes", "2", "--workers", "1", "--counts-json"])
        .arg(&counts)
        .args([
            "--", "run", "--source", kind, "--window", "1s", "--model", "none", "--alerts", "none", "--quiet",
        ])
        .arg("--input")
        .arg(path)
        .arg("--rules")
        .arg(rules)
        .stdout(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::Runtime(format!("bench: starting the cluster: {e}")))?;
    if !out.status.success() {
        return Err(Error::Runtime(format!(
            "bench: the cluster failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).lines().rev().take(5).collect::<Vec<_>>().join(" | ")
        )));
    }
    let text = std::fs::read_to_string(&counts).map_err(|e| Error::io(&counts, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Runtime(format!("bench: the cluster's counts: {e}")))
}

/// One run of a workload's limit.
struct LimitRun {
    events: u64,
    windows: Option<u64>,
    over: Option<u64>,
    /// Windows the model scored (W3).
    scored: Option<u64>,
    elapsed: Duration,
}

impl LimitRun {
    fn counted(r: bare::BareRun) -> Self {
        LimitRun {
            events: r.events,
            windows: Some(r.windows),
            over: Some(r.over),
            scored: None,
            elapsed: r.elapsed,
        }
    }
}

/// `repeat` runs of the engine and of its limit, in turn; every run must read every event,
/// the engine must fire the same alerts each time, and engine and limit must close the same
/// windows (W1, W2) or score the same model windows (W3), run after run.
fn measure(
    config: &BenchConfig,
    name: &str,
    workers: usize,
    rules: &Path,
    source: SourceConfig,
    model: &str,
    (limit_name, mut limit): (&str, impl FnMut() -> Result<LimitRun, Error>),
) -> Result<BenchRow, Error> {
    let mut engine_runs = Vec::new();
    let mut limit_runs = Vec::new();
    for _ in 0..config.repeat.max(1) {
        limit_runs.push(limit()?);
        engine_runs.push(run_w(name, source.clone(), rules, workers, model)?);
    }
    let first = &engine_runs[0];
    if engine_runs.iter().any(|r| r.alerts != first.alerts || r.windows != first.windows) {
        return Err(Error::Runtime(format!("bench: {name}: alerts or windows differ between runs")));
    }
    for (l, e) in limit_runs.iter().zip(&engine_runs) {
        let windows_differ = l.windows.is_some() && l.windows != e.windows;
        let scored_differ = l.scored.is_some() && l.scored != e.scored;
        if l.events != e.events || windows_differ || scored_differ {
            return Err(Error::Runtime(format!(
                "bench: {name}: the limit read {} events into {:?} windows ({:?} scored), the engine {} \
                 into {:?} ({:?} scored): not the same work",
                l.events, l.windows, l.scored, e.events, e.windows, e.scored
            )));
        }
    }
    let l = &limit_runs[0];
    let engine = Spread::of(engine_runs.iter().map(|r| r.events_per_sec).collect());
    let lim =
        Spread::of(limit_runs.iter().map(|r| r.events as f64 / r.elapsed.as_secs_f64().max(1e-9)).collect());
    let mut row = engine_runs.swap_remove(0);
    row.seconds = row.events as f64 / engine.median.max(1e-9);
    row.events_per_sec = engine.median;
    row.ratio = Some(engine.median / lim.median.max(1e-9));
    row.spread = engine;
    row.limit = Some(Limit {
        name: limit_name.into(),
        windows: l.windows,
        windows_over: l.over,
        scored: l.scored,
        spread: lim,
    });
    Ok(row)
}

/// Median, minimum, maximum and every run's figure.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Spread {
    /// Median (of an even count, the mean of the middle two).
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// Every run, in order.
    pub runs: Vec<f64>,
}

impl Spread {
    /// The spread of `runs`.
    pub fn of(runs: Vec<f64>) -> Self {
        let mut sorted = runs.clone();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = match n {
            0 => 0.0,
            _ if n % 2 == 1 => sorted[n / 2],
            _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        };
        Spread {
            median,
            min: sorted.first().copied().unwrap_or(0.0),
            max: sorted.last().copied().unwrap_or(0.0),
            runs,
        }
    }
}

/// What a W row was measured against.
#[derive(Clone, Debug, Serialize)]
pub struct Limit {
    /// What the limit does.
    pub name: String,
    /// Windows it closed (equal to the engine's, checked).
    pub windows: Option<u64>,
    /// Windows whose maximum passed the rule's threshold.
    pub windows_over: Option<u64>,
    /// Windows the model scored (W3; equal to the engine's, checked).
    pub scored: Option<u64>,
    /// Its events/s.
    pub spread: Spread,
}

/// Every event of a binary log, decoded into memory.
fn read_log(path: &Path) -> Result<Vec<Event>, Error> {
    use sensorflow_operators::{PartitionReader, Poll, SourceBatch};
    let mut reader = crate::connectors::binlog::LogReader::new(path, 0, 1, Dictionary::default(), None);
    let mut batch = SourceBatch::default();
    loop {
        let poll =
            reader.poll(&mut batch).map_err(|e| Error::Runtime(format!("bench: {}: {e}", path.display())))?;
        if poll == Poll::Done {
            return Ok(batch.events);
        }
    }
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
    /// Windows closed (W).
    pub windows: Option<u64>,
    /// Windows the anomaly model scored (W3).
    pub scored: Option<u64>,
    /// Every run's events/s (W: `repeat` runs; `events_per_sec` is their median).
    pub spread: Spread,
    /// The limit a W row is measured against, from the same runs.
    pub limit: Option<Limit>,
    /// Engine ÷ limit, of the medians.
    pub ratio: Option<f64>,
    /// Ingest→alert latency, µs percentiles (L; W runs report them too).
    pub latency: Option<LatencySummary>,
    /// L: from the moment the event that closes an alert's window was due (its scheduled
    /// emission by the paced simulator) to the alert being written, µs percentiles.
    pub due_latency: Option<LatencySummary>,
    /// Peak resident memory of the run's own process (M), bytes.
    pub peak_rss_bytes: Option<u64>,
    /// Bytes each further device's series costs (M: the difference of two fleet sizes).
    pub bytes_per_series: Option<f64>,
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
        due_latency: None,
        peak_rss_bytes: field("peak memory (VmHWM)").map(|mb| (mb * 1e6) as u64),
        bytes_per_series: None,
        windows: None,
        scored: None,
        spread: Spread::of(vec![rate]),
        limit: None,
        ratio: None,
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
        events_per_sec: s.events_per_sec(),
        alerts: s.alerts_by_rule.values().map(|(f, _)| f).sum(),
        latency: s.latency,
        due_latency: s.due_latency,
        windows: Some(s.windows_closed),
        scored: (model != "none").then_some(s.windows_scored),
        spread: Spread::of(vec![s.events_per_sec()]),
        limit: None,
        ratio: None,
    })
}

/// L: the simulator at `rate` events/s for `secs` seconds, paced in real time (3 metrics per
/// device every `tick_ms`; each tick's samples arrive together), through the default pipeline
/// plus rules that fire and clear often (each metric's window `stddev` above about its
/// median). Two latencies to the
/// moment the alert reached the sink: from the moment the source ingested the event that moved
/// the watermark past an alert's window, and (issue 16) from the moment that event was due,
/// its scheduled emission, which also counts any wait before the source read it.
pub fn latency(dir: &Path, rate: u64, secs: u64, tick_ms: u64, workers: usize) -> Result<BenchRow, Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let rules = dir.join("latency-rules.toml");
    let mut text = crate::config::rules::DEFAULT_RULES.to_string();
    // Each metric's window standard deviation against about its median over the simulator's
    // devices: a device changes state in about one window in five, so alerts (the samples)
    // come at about half an alert per device and second.
    for (metric, median) in [("temperature", 0.16), ("humidity", 0.57), ("vibration", 0.048)] {
        text.push_str(&format!(
            "\n[[rule]]\nname = \"{metric}-l-spread\"\nmetric = \"{metric}\"\nfield = \"stddev\"\nop = \">\"\nvalue = {median}\n"
        ));
    }
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
        due_latency: s.due_latency,
        windows: None,
        scored: None,
        spread: Spread::of(vec![s.events_per_sec()]),
        limit: None,
        ratio: None,
    })
}

/// Prints rows as tables: the W rows with their limits and ratios, then the others.
pub fn print_table(title: &str, rows: &[BenchRow]) {
    let m = |x: f64| format!("{:.2} M", x / 1e6);
    let (w, other): (Vec<&BenchRow>, Vec<&BenchRow>) = rows.iter().partition(|r| r.limit.is_some());
    if !w.is_empty() {
        println!(
            "\n{title}: events/s, median of {} runs (min–max), engine ÷ its limit in the same runs",
            w[0].spread.runs.len()
        );
        println!(
            "{:<30} {:>7} {:>11} {:>22} {:>22} {:>7} {:>8}  limit",
            "workload", "workers", "events", "engine", "limit", "ratio", "alerts"
        );
        for r in &w {
            let Some(limit) = &r.limit else { continue };
            let spread = |s: &Spread| format!("{} ({:.1}–{:.1})", m(s.median), s.min / 1e6, s.max / 1e6);
            println!(
                "{:<30} {:>7} {:>11} {:>22} {:>22} {:>7.2} {:>8}  {}{}",
                r.name,
                r.workers,
                r.events,
                spread(&r.spread),
                spread(&limit.spread),
                r.ratio.unwrap_or(0.0),
                r.alerts,
                limit.name,
                limit.windows_over.map_or(String::new(), |o| format!(" ({o} windows over 80)"))
            );
        }
    }
    if other.is_empty() {
        return;
    }
    println!("\n{title}");
    println!(
        "{:<36} {:>7} {:>12} {:>8} {:>12} {:>9} {:>9} {:>9}",
        "workload", "workers", "events", "secs", "events/s", "p50 ms", "p99 ms", "p99.9 ms"
    );
    for r in other {
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
        if let Some(d) = &r.due_latency {
            println!(
                "{:<36} from the closing event's due time: p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms (n = {})",
                "",
                d.p50_us as f64 / 1e3,
                d.p99_us as f64 / 1e3,
                d.p999_us as f64 / 1e3,
                d.count
            );
        }
    }
}
