//! The engine: [`run`] validates a [`RunConfig`], opens the outputs, starts the HTTP server
//! if asked, runs the dataflow on every worker ([`graph`] builds it, [`worker`] steps it) and
//! gathers the [`Summary`]. State the workers share lives in one `Shared` per process.
//!
//! - `graph`: the dataflow, readable beside the diagram in the design;
//! - `worker`: the step loop, rules and names fed in at the sources' frontier;
//! - `durable`: offset commits, checkpoints and the resume point (one owner);
//! - `outputs`: alerts, dead letters and late events out of the graph;
//! - `rules_watch`: the rules file, reloaded on change;
//! - `scorers`: the anomaly model factory and its hot reload;
//! - `summary`: what a run reports.

mod durable;
mod graph;
mod outputs;
mod rules_watch;
pub mod scorers;
pub mod summary;
mod worker;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use sensorflow_operators::{
    lock, Alert, Control, Counters, DeadLetter, Dictionary, ErrorSlot, LateEvent, ScorerFactory,
    WatermarkClock,
};

use crate::config::rules::{load_rules, parse_rules, DEFAULT_RULES};
use crate::config::RunConfig;
use crate::connectors::simulator::{Label, Labels};
use crate::connectors::{Committer, SourceConfig};
use crate::observe::http::HttpServer;
use crate::observe::logging::BatchLedger;
use crate::observe::progress::RunProgress;
use crate::observe::telemetry::Telemetry;
use crate::sinks::{AlertWriter, Diverted};
use crate::Error;
use summary::{GroundTruth, LatencySummary, Summary};

/// How many dead letters go to stderr when no dead-letter file is configured.
const STDERR_DEAD_LETTERS: u64 = 10;

/// Everything a run produced, kept in memory (for tests and embedding).
#[derive(Debug, Default, Clone)]
pub struct Collected {
    /// Alerts, in sink order.
    pub alerts: Arc<Mutex<Vec<Alert>>>,
    /// Dead letters.
    pub dead: Arc<Mutex<Vec<DeadLetter>>>,
    /// Late events.
    pub late: Arc<Mutex<Vec<LateEvent>>>,
    /// Simulator ground truth.
    pub labels: Labels,
    /// Wall-clock time (ms since the Unix epoch) each alert was written, in sink order.
    pub written_at_ms: Arc<Mutex<Vec<u64>>>,
}

impl Collected {
    /// The alerts, sorted by id (worker count and order independent).
    pub fn sorted_alerts(&self) -> Vec<Alert> {
        let mut v = lock(&self.alerts).clone();
        v.sort_by_key(|a| a.id());
        v
    }

    /// The dead letters.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        lock(&self.dead).clone()
    }

    /// The late events.
    pub fn late_events(&self) -> Vec<LateEvent> {
        lock(&self.late).clone()
    }

    /// The simulator's labels.
    pub fn labels(&self) -> Vec<Label> {
        lock(&self.labels).clone()
    }
}

/// Hooks a caller can use while a run is in progress.
#[derive(Debug, Default, Clone)]
pub struct RunHandle {
    /// Set to stop the sources; the run then drains and finishes.
    pub stop: Arc<AtomicBool>,
    /// The HTTP server's address, once it listens (with `RunConfig::http`).
    pub http: Arc<std::sync::OnceLock<std::net::SocketAddr>>,
}

/// What the workers of one process share.
struct Shared {
    config: RunConfig,
    dict: Dictionary,
    counters: Arc<Counters>,
    clock: WatermarkClock,
    errors: ErrorSlot,
    failure: Arc<Mutex<Option<Error>>>,
    stop: Arc<AtomicBool>,
    alerts: Mutex<AlertWriter>,
    dead: Mutex<Diverted>,
    late: Mutex<Diverted>,
    collected: Option<Collected>,
    labels: Labels,
    initial_rules: Vec<Control>,
    scorers: Option<ScorerFactory>,
    /// The device model over device rows, and where its per-row scores go.
    device_models: Option<sensorflow_operators::RowModelFactory>,
    device_model_tally: scorers::ModelTally,
    scores: Option<sensorflow_operators::ScoreSink>,
    /// Every worker's offset committers; worker 0 commits them all at one frontier.
    committers: Mutex<Vec<Arc<dyn Committer>>>,
    /// Alerts below this dataflow time were written by an earlier run (Kafka resume point).
    suppress_below: u64,
    /// Operator state snapshots (a Kafka-fed run with a checkpoint).
    snapshots: Option<Arc<sensorflow_operators::Snapshots>>,
    /// Live state for the HTTP server, when there is one.
    telemetry: Option<Arc<Telemetry>>,
    /// Where source batches are remembered for tracing alerts back, when exporting spans.
    ledger: Option<Arc<BatchLedger>>,
    /// A paced simulator's schedule, to time alerts from the moment the event that closes their
    /// window was due (`None` for every other source).
    pace: Option<Pace>,
}

/// When a paced simulator's events are due: the event at `start_ms` when its first reader
/// started, the others `(ts - start_ms) / speed` later, on the tick grid.
#[derive(Debug)]
struct Pace {
    origin: std::sync::OnceLock<Instant>,
    start_ms: u64,
    end_ms: u64,
    tick_ms: u64,
    speed: f64,
    lateness_ms: u64,
}

impl Pace {
    /// The paced schedule of `config`'s source, if it is a paced simulator.
    fn of(config: &RunConfig) -> Option<Pace> {
        let SourceConfig::Simulator(sim) = &config.source else { return None };
        let speed = sim.realtime_speed?;
        Some(Pace {
            origin: std::sync::OnceLock::new(),
            start_ms: sim.start_ms,
            end_ms: sim.start_ms.saturating_add(sim.span_ms),
            tick_ms: sim.interval_ms.max(1),
            speed,
            lateness_ms: config.lateness,
        })
    }

    /// When the first event at or past `window_end` plus the lateness was due, if the run has
    /// one (the last windows are closed by the end of the input, not by an event).
    fn due(&self, window_end: u64) -> Option<Instant> {
        let origin = self.origin.get()?;
        let at = window_end.checked_add(self.lateness_ms)?.max(self.start_ms);
        let tick = (at - self.start_ms).div_ceil(self.tick_ms) * self.tick_ms;
        let due_ts = self.start_ms + tick;
        (due_ts < self.end_ms).then(|| *origin + Duration::from_secs_f64(tick as f64 / 1000.0 / self.speed))
    }
}

/// A paced simulator's reader that notes when the first of them started (its schedule's
/// origin; every reader paces from its own first poll, so later ones are at most a few
/// microseconds behind, and a latency measured from this origin is never understated).
struct PaceOrigin {
    inner: Box<dyn sensorflow_operators::PartitionReader>,
    shared: Arc<Shared>,
}

impl sensorflow_operators::PartitionReader for PaceOrigin {
    fn poll(
        &mut self,
        out: &mut sensorflow_operators::SourceBatch,
    ) -> Result<sensorflow_operators::Poll, sensorflow_operators::SourceError> {
        if let Some(p) = &self.shared.pace {
            p.origin.get_or_init(Instant::now);
        }
        self.inner.poll(out)
    }

    fn name(&self) -> String {
        self.inner.name()
    }

    fn next_due(&self) -> Option<Instant> {
        self.inner.next_due()
    }
}

impl Shared {
    /// Records the run's first failure and stops the sources.
    fn fail(&self, e: Error) {
        lock(&self.failure).get_or_insert(e);
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Flushes alerts, dead letters and late events.
    fn flush(&self) -> Result<(), Error> {
        lock(&self.alerts).flush()?;
        lock(&self.dead).flush()?;
        lock(&self.late).flush()
    }
}

/// Runs the pipeline to completion and reports what happened.
pub fn run(config: &RunConfig) -> Result<Summary, Error> {
    run_with(config, None, RunHandle::default())
}

/// Runs the pipeline and also keeps every alert, dead letter and late event in memory.
pub fn run_collect(config: &RunConfig) -> Result<(Summary, Collected), Error> {
    let collected = Collected::default();
    let summary = run_with(config, Some(collected.clone()), RunHandle::default())?;
    Ok((summary, collected))
}

/// Runs the pipeline with optional in-memory capture and an external stop handle.
pub fn run_with(
    config: &RunConfig,
    collected: Option<Collected>,
    handle: RunHandle,
) -> Result<Summary, Error> {
    config.validate()?;
    let spec = config.window_spec()?;
    let initial_rules = match &config.rules {
        Some(path) => load_rules(path)?,
        None => parse_rules(DEFAULT_RULES, "built-in default rules")?,
    };
    // The alert file first: opening it drops a last line cut short, which resuming must not see.
    let alerts = AlertWriter::open(&config.process_alerts())?;
    let dead = Diverted::new(config.dead_letters.as_deref(), "dead letter", STDERR_DEAD_LETTERS)?;
    let late = Diverted::new(config.late_events.as_deref(), "late event", 0)?;
    let resume = durable::resume(config)?;
    let mut initial_rules = initial_rules;
    initial_rules.extend(resume.open);
    if spec.hop_ms != spec.size_ms && initial_rules.iter().any(|c| matches!(c, Control::Rule(r) if r.early)) {
        tracing::warn!(
            "early = true needs tumbling windows: with --hop, every rule decides at its window's end"
        );
    }
    let labels = collected.as_ref().map(|c| c.labels.clone()).unwrap_or_default();
    let counters = Counters::for_workers(config.workers);
    let http_addr = config.http_addr()?;
    let telemetry = http_addr.as_ref().map(|_| {
        Telemetry::new(counters.clone(), config.source.name().to_string(), config.workers, config.process)
    });
    let scorers = scorers::scorer_factory_with(&config.model, telemetry.clone())?;
    if let Some(t) = &telemetry {
        *lock(&t.model) = scorers::model_info(&config.model, scorers.as_ref());
    }
    let device_model_tally = scorers::ModelTally::default();
    let device_models = scorers::device_model_factory(config, device_model_tally.clone())?;
    let scores = config.scores.as_deref().map(scorers::score_file).transpose()?;
    // What operator state snapshots belong to: a restore under other models or settings is
    // refused.
    let series = scorers::model_info(&config.model, scorers.as_ref());
    let identity = format!(
        "series model {} {}; device model {} warm-up {:?} rows; windows {} ms, hop {} ms",
        series.name,
        series.version,
        config.device_model,
        config.device_warmup_rows().ok(),
        spec.size_ms,
        spec.hop_ms
    );
    let operators: Vec<&str> = [(scorers.is_some(), "anomalies"), (device_models.is_some(), "device-rows")]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
    let dict = Dictionary::default();
    if config.processes <= 1 {
        // One process has no peers to tell the names it learns: keep no journal of them.
        dict.devices.stop_journal();
        dict.metrics.stop_journal();
    }
    let shared = Arc::new(Shared {
        config: config.clone(),
        dict,
        counters,
        clock: WatermarkClock::new(config.workers),
        errors: ErrorSlot::default(),
        failure: Arc::default(),
        stop: handle.stop.clone(),
        alerts: Mutex::new(alerts),
        dead: Mutex::new(dead),
        late: Mutex::new(late),
        collected,
        labels,
        initial_rules,
        scorers,
        device_models,
        device_model_tally,
        scores,
        committers: Mutex::default(),
        suppress_below: resume.suppress_below,
        snapshots: durable::snapshots(config, resume.suppress_below, &identity, &operators)?,
        telemetry: telemetry.clone(),
        ledger: config.otlp_endpoint.as_ref().map(|_| Arc::new(BatchLedger::default())),
        pace: Pace::of(config),
    });
    // The server lives as long as this function: dropping it lets SSE readers drain.
    let server = match (&http_addr, &telemetry) {
        (Some(addr), Some(t)) => {
            let server = HttpServer::start(addr, t.clone())?;
            // Plain stderr too: the one line a user (or a script starting the run) looks for.
            eprintln!("http: serving http://{}/ (metrics on /metrics, alerts on /alerts)", server.addr());
            let _ = handle.http.set(server.addr());
            Some(server)
        }
        _ => None,
    };
    let progress = config.summary.then(|| RunProgress::start(shared.counters.clone(), config.source.name()));
    // The run's time starts when its first worker does: in a cluster, after the processes have
    // started and connected (process start is not the engine's speed).
    let first_worker: Arc<std::sync::OnceLock<Instant>> = Arc::default();
    let worker_shared = shared.clone();
    let first = first_worker.clone();
    let guards = timely::execute(config.timely_config()?, move |worker| {
        first.get_or_init(Instant::now);
        worker::run_worker(worker, &worker_shared, spec)
    })
    .map_err(|e| Error::Runtime(format!("could not start workers: {e}")))?;

    let mut latency = Histogram::<u64>::new(3).map_err(|e| Error::Runtime(e.to_string()))?;
    let mut due_latency = Histogram::<u64>::new(3).map_err(|e| Error::Runtime(e.to_string()))?;
    let mut by_rule: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut fired = Vec::new();
    for result in guards.join() {
        let report = result.map_err(|e| Error::Runtime(format!("a worker failed: {e}")))?;
        latency.add(&report.latency).map_err(|e| Error::Runtime(e.to_string()))?;
        due_latency.add(&report.due_latency).map_err(|e| Error::Runtime(e.to_string()))?;
        fired.extend(report.fired);
        for (rule, (f, c)) in report.by_rule {
            let e = by_rule.entry(rule).or_default();
            e.0 += f;
            e.1 += c;
        }
    }
    let elapsed = first_worker.get().map_or(Duration::ZERO, Instant::elapsed);
    drop(progress);
    shared.flush()?;
    if let Some(t) = &shared.telemetry {
        t.finish();
    }
    if let Some(server) = server {
        server.shutdown();
    }
    if let Some(e) = lock(&shared.failure).take() {
        return Err(e);
    }
    if let Some(e) = lock(&shared.errors).take() {
        return Err(Error::Source(e));
    }
    let c = &shared.counters;
    let device_models_made = lock(&shared.device_model_tally).clone();
    Ok(Summary {
        workers: config.workers,
        processes: config.processes.max(1),
        elapsed,
        records_in: Counters::get(&c.records_in),
        processed: Counters::get(&c.events_processed),
        late: Counters::get(&c.late),
        dead_lettered: Counters::get(&c.dead_lettered),
        clock_rejected: c.clock_rejected_by_device(),
        duplicates: Counters::get(&c.duplicates),
        dedupe_horizon_exceeded: Counters::get(&c.dedupe_horizon_exceeded),
        windows_closed: Counters::get(&c.windows_closed),
        alerts_deduplicated: Counters::get(&c.alerts_deduplicated),
        alerts_by_rule: by_rule,
        ground_truth: match &config.source {
            SourceConfig::Simulator(sim) => {
                let labels = lock(&shared.labels);
                Some(GroundTruth::score(&labels, &fired, config.window.max(sim.interval_ms * 64)))
            }
            _ => None,
        },
        latency: LatencySummary::from_histogram(&latency),
        due_latency: LatencySummary::from_histogram(&due_latency),
        dead_letter_file: config.dead_letters.clone(),
        stopped_early: shared.stop.load(Ordering::Relaxed),
        peak_rss_bytes: summary::peak_rss_bytes(),
        evicted_series: Counters::get(&c.evicted_series),
        evicted_devices: Counters::get(&c.evicted_devices),
        device_models: device_models_made,
        device_rows_scored: Counters::get(&c.device_rows_scored),
        windows_scored: Counters::get(&c.windows_scored),
        held_back: c.partitions().iter().map(|p| p.held_back.load(Ordering::Relaxed)).sum(),
        held_back_secs: c.partitions().iter().map(|p| p.held_back_us.load(Ordering::Relaxed)).sum::<u64>()
            as f64
            / 1e6,
    })
}
