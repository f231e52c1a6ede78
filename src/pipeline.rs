//! Assembles and runs the dataflow:
//!
//! ```text
//! source ─► dedupe (by device) ─► windows ─► rules ─► alert sink
//!   ├► late ─► late sink                       ▲
//!   └► dead letters ─► dead-letter sink        └── rules + device metadata (differential collection)
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use differential_dataflow::input::Input;
use hdrhistogram::Histogram;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::{Concat, Inspect, Probe};
use timely::dataflow::ProbeHandle;

use sensorflow_operators::{
    partitioned_source, Alert, AlertKind, Anomalies, ApplyRules, Control, Counters, DeadLetter, Dedupe,
    Dictionary, ErrorSlot, LateEvent, ResolveNames, ScorerFactory, SourceContext, WatermarkClock, Windows,
};

use crate::config::{AlertOutput, RunConfig};
use crate::connectors::parse::Limits;
use crate::connectors::simulator::{Label, Labels};
use crate::connectors::{self, ReaderContext};
use crate::http::HttpServer;
use crate::logging::BatchLedger;
use crate::observe::Telemetry;
use crate::rules_file::{load_rules, parse_rules, DEFAULT_RULES};
use crate::sinks::{dead_letter_json, late_json, AlertWriter, LineFile};
use crate::summary::{LatencySummary, Summary};
use crate::Error;

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
        let mut v = self.alerts.lock().unwrap_or_else(PoisonError::into_inner).clone();
        v.sort_by_key(|a| a.id());
        v
    }

    /// The dead letters.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.dead.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The late events.
    pub fn late_events(&self) -> Vec<LateEvent> {
        self.late.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The simulator's labels.
    pub fn labels(&self) -> Vec<Label> {
        self.labels.lock().unwrap_or_else(PoisonError::into_inner).clone()
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

struct Shared {
    config: RunConfig,
    dict: Dictionary,
    counters: Arc<Counters>,
    clock: WatermarkClock,
    errors: ErrorSlot,
    failure: Arc<Mutex<Option<Error>>>,
    stop: Arc<AtomicBool>,
    alerts: Mutex<AlertWriter>,
    dead_file: Option<Mutex<LineFile>>,
    late_file: Option<Mutex<LineFile>>,
    collected: Option<Collected>,
    labels: Labels,
    initial_rules: Vec<Control>,
    scorers: Option<ScorerFactory>,
    /// Every worker's offset committers; worker 0 commits them all at one frontier.
    committers: Mutex<Vec<Arc<dyn connectors::Committer>>>,
    /// Alerts below this dataflow time were written by an earlier run (Kafka resume point).
    suppress_below: u64,
    /// Live state for the HTTP server, when there is one.
    telemetry: Option<Arc<Telemetry>>,
    /// Where source batches are remembered for tracing alerts back, when exporting spans.
    ledger: Option<Arc<BatchLedger>>,
}

impl Shared {
    fn fail(&self, e: Error) {
        self.failure.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert(e);
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What one worker measured.
struct WorkerReport {
    latency: Histogram<u64>,
    by_rule: BTreeMap<String, (u64, u64)>,
    /// Fired alerts as (device, metric, episode start, source), for simulator ground truth.
    fired: Vec<crate::summary::FiredAlert>,
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
    let alerts = match &config.process_alerts() {
        AlertOutput::Stdout => AlertWriter::Stdout(Default::default()),
        AlertOutput::File(path) => AlertWriter::file(path)?,
        AlertOutput::None => AlertWriter::Discard,
        AlertOutput::Kafka { brokers, topic } => AlertWriter::kafka(brokers, topic)?,
        AlertOutput::Mqtt { broker, prefix } => AlertWriter::mqtt(broker, prefix)?,
    };
    let dead_file = config.dead_letters.as_deref().map(LineFile::create).transpose()?.map(Mutex::new);
    let late_file = config.late_events.as_deref().map(LineFile::create).transpose()?.map(Mutex::new);
    let labels = collected.as_ref().map(|c| c.labels.clone()).unwrap_or_default();
    let counters = Counters::for_workers(config.workers);
    let http_addr = config.http_addr()?;
    let telemetry = http_addr.as_ref().map(|_| {
        Telemetry::new(counters.clone(), config.source.name().to_string(), config.workers, config.process)
    });
    let scorers = crate::model::scorer_factory_with(&config.model, telemetry.clone())?;
    if let Some(t) = &telemetry {
        *t.model.lock().unwrap_or_else(PoisonError::into_inner) =
            crate::model::model_info(&config.model, scorers.as_ref());
    }
    let mut shared = Arc::new(Shared {
        config: config.clone(),
        dict: Dictionary::default(),
        counters,
        clock: WatermarkClock::new(config.workers),
        errors: ErrorSlot::default(),
        failure: Arc::default(),
        stop: handle.stop.clone(),
        alerts: Mutex::new(alerts),
        dead_file,
        late_file,
        collected,
        labels,
        initial_rules,
        scorers,
        committers: Mutex::default(),
        suppress_below: match &config.source {
            crate::connectors::SourceConfig::Kafka(k) => {
                let file = config.checkpoint_path().map(|p| read_checkpoint(&p)).transpose()?.flatten();
                crate::connectors::kafka::resume_frontier(k)?.max(file.unwrap_or(0))
            }
            _ => 0,
        },
        telemetry: telemetry.clone(),
        ledger: config.otlp_endpoint.as_ref().map(|_| Arc::new(BatchLedger::default())),
    });
    if shared.suppress_below > 0 {
        if let AlertOutput::File(path) = &config.process_alerts() {
            let open = crate::sinks::open_episodes(path, shared.suppress_below)?;
            let mut rules = shared.initial_rules.clone();
            rules.extend(open.into_iter().map(|(device, rule, since)| Control::OpenEpisode {
                device,
                rule,
                since,
                resume_at: shared.suppress_below,
            }));
            if let Some(s) = Arc::get_mut(&mut shared) {
                s.initial_rules = rules;
            }
        }
        tracing::info!(
            "resuming consumer group: alerts before {} were written by an earlier run",
            crate::timefmt::format_datetime(shared.suppress_below)
        );
    }
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
    let started = Instant::now();
    let worker_shared = shared.clone();
    let guards =
        timely::execute(config.timely_config()?, move |worker| run_worker(worker, &worker_shared, spec))
            .map_err(|e| Error::Runtime(format!("could not start workers: {e}")))?;

    let mut latency = Histogram::<u64>::new(3).map_err(|e| Error::Runtime(e.to_string()))?;
    let mut by_rule: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut fired = Vec::new();
    for result in guards.join() {
        let report = result.map_err(|e| Error::Runtime(format!("a worker failed: {e}")))?;
        latency.add(&report.latency).map_err(|e| Error::Runtime(e.to_string()))?;
        fired.extend(report.fired);
        for (rule, (f, c)) in report.by_rule {
            let e = by_rule.entry(rule).or_default();
            e.0 += f;
            e.1 += c;
        }
    }
    let elapsed = started.elapsed();
    drop(progress);
    shared.alerts.lock().unwrap_or_else(PoisonError::into_inner).flush()?;
    for file in [&shared.dead_file, &shared.late_file].into_iter().flatten() {
        file.lock().unwrap_or_else(PoisonError::into_inner).flush()?;
    }
    if let Some(t) = &shared.telemetry {
        t.finish();
    }
    if let Some(server) = server {
        server.shutdown();
    }
    if let Some(e) = shared.failure.lock().unwrap_or_else(PoisonError::into_inner).take() {
        return Err(e);
    }
    if let Some(e) = shared.errors.lock().unwrap_or_else(PoisonError::into_inner).take() {
        return Err(Error::Source(e));
    }
    let c = &shared.counters;
    Ok(Summary {
        workers: config.workers,
        elapsed,
        records_in: Counters::get(&c.records_in),
        processed: Counters::get(&c.events_processed),
        late: Counters::get(&c.late),
        dead_lettered: Counters::get(&c.dead_lettered),
        duplicates: Counters::get(&c.duplicates),
        dedupe_horizon_exceeded: Counters::get(&c.dedupe_horizon_exceeded),
        windows_closed: Counters::get(&c.windows_closed),
        alerts_deduplicated: Counters::get(&c.alerts_deduplicated),
        alerts_by_rule: by_rule,
        ground_truth: match &config.source {
            crate::connectors::SourceConfig::Simulator(sim) => {
                let labels = shared.labels.lock().unwrap_or_else(PoisonError::into_inner);
                Some(crate::summary::GroundTruth::score(
                    &labels,
                    &fired,
                    config.window.max(sim.interval_ms * 64),
                ))
            }
            _ => None,
        },
        latency: LatencySummary::from_histogram(&latency),
        dead_letter_file: config.dead_letters.clone(),
        stopped_early: shared.stop.load(Ordering::Relaxed),
    })
}

fn run_worker(
    worker: &mut timely::worker::Worker,
    shared: &Arc<Shared>,
    spec: sensorflow_operators::WindowSpec,
) -> WorkerReport {
    let index = worker.index();
    let peers = worker.peers();
    // The worker's index within this process (timely numbers workers process by process).
    let local = index % shared.config.workers.max(1);
    let cluster = shared.config.processes > 1;
    let ctx = ReaderContext {
        index,
        peers,
        dict: shared.dict.clone(),
        limits: Limits { max_abs_value: shared.config.max_abs_value, ..Limits::default() },
        labels: shared.labels.clone(),
        max_events: shared.config.max_events,
    };
    let readers = match connectors::open(&shared.config.source, &ctx) {
        Ok((readers, committers)) => {
            shared.committers.lock().unwrap_or_else(PoisonError::into_inner).extend(committers);
            readers
        }
        Err(e) => {
            shared.fail(Error::Connector(e));
            Vec::new()
        }
    };
    let report = Rc::new(RefCell::new(WorkerReport {
        latency: Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant figures is valid")),
        by_rule: BTreeMap::new(),
        fired: Vec::new(),
    }));
    let source_probe = ProbeHandle::new();
    let done_probe = ProbeHandle::new();
    let counters = shared.counters.clone();

    let mut control = worker.dataflow::<u64, _, _>(|scope| {
        let (control_input, control) = scope.new_collection::<Control, isize>();
        let source_ctx = SourceContext {
            counters: counters.clone(),
            clock: Some((shared.clock.clone(), local)),
            errors: shared.errors.clone(),
            stop: shared.stop.clone(),
            worker: local,
            batch_hook: shared.ledger.clone().map(|l| l as Arc<dyn sensorflow_operators::BatchHook>),
        };
        let name = format!("Source({})", shared.config.source.name());
        let streams = partitioned_source(scope, &name, readers, shared.config.source_options(), source_ctx);

        let s = shared.clone();
        let dead_seen = Rc::new(RefCell::new(0u64));
        streams
            .dead
            .inspect_core(move |batch| {
                if let Ok((_, letters)) = batch {
                    write_dead_letters(&s, letters, &mut dead_seen.borrow_mut());
                }
            })
            .probe_with(&done_probe);
        let s = shared.clone();
        streams
            .late
            .inspect_core(move |batch| {
                if let Ok((_, late)) = batch {
                    write_late(&s, late);
                }
            })
            .probe_with(&done_probe);

        let s = shared.clone();
        let r = report.clone();
        let events = streams.events.probe_with(&source_probe).dedupe(counters.clone());
        let control_stream = control.consolidate().inner.broadcast();
        let windows = events.clone().windows_core(Pipeline, spec, counters.clone());
        let windows = match &shared.telemetry {
            Some(t) => {
                let t = t.clone();
                windows.inspect_core(move |batch| {
                    if let Ok((_, w)) = batch {
                        t.windows_closed(w);
                    }
                })
            }
            None => windows,
        };
        let rule_alerts = windows.apply_rules(control_stream.clone(), shared.dict.clone(), counters.clone());
        let alerts = match &shared.scorers {
            Some(factory) => {
                let model_alerts = events.anomalies(factory.clone(), shared.dict.clone(), counters.clone());
                rule_alerts.concat(model_alerts)
            }
            None => rule_alerts,
        };
        // In a cluster an alert may be made in a process that never read its device's name.
        let alerts = if cluster { alerts.resolve_names(control_stream, shared.dict.clone()) } else { alerts };
        alerts
            .inspect_core(move |batch| match batch {
                Ok((stamp, alerts)) => {
                    // A stamp with no element makes no progress claim; keep such alerts.
                    if stamp.least().is_none_or(|&t| t >= s.suppress_below) {
                        write_alerts(&s, alerts, &mut r.borrow_mut());
                    } else {
                        Counters::add(&s.counters.alerts_deduplicated, alerts.len() as u64);
                    }
                }
                Err(frontier) => {
                    if let Some(&t) = frontier.first() {
                        if index == 0 {
                            s.clock.forget_before(t);
                        }
                    }
                }
            })
            .probe_with(&done_probe);
        control_input
    });

    // Rules and metadata: worker 0 owns the file; every worker advances its input's time
    // with the source frontier so rule changes apply from "now" in event time.
    let mut rules = RulesWatch::new(shared);
    if index == 0 {
        for c in &shared.initial_rules {
            control.insert(c.clone());
        }
    }
    let mut control = Some(control);
    let started = Instant::now();
    let mut durable = Durable::new(index == 0);
    while !done_probe.done() {
        durable.maybe_commit(shared, &done_probe);
        if let Some(limit) = shared.config.duration {
            if index == 0 && started.elapsed() >= Duration::from_millis(limit) {
                shared.stop.store(true, Ordering::Relaxed);
            }
        }
        let frontier = source_probe.with_frontier(|f| f.first().copied());
        match frontier {
            Some(t) => {
                if let Some(input) = control.as_mut() {
                    if index == 0 {
                        rules.poll(input);
                    }
                    if cluster && local == 0 {
                        // Tell every process the names this one has learned, at a time no
                        // later than the events that carry them.
                        for name in shared.dict.devices.drain_new() {
                            input.insert(Control::DeviceName(name.to_string()));
                        }
                        for name in shared.dict.metrics.drain_new() {
                            input.insert(Control::MetricName(name.to_string()));
                        }
                    }
                    if t > *input.time() {
                        input.advance_to(t);
                    }
                    input.flush();
                }
            }
            None => {
                // Sources are done: close the rules input so everything can drain.
                control = None;
            }
        }
        worker.step_or_park(Some(Duration::from_millis(1)));
    }
    drop(control);
    durable.finish(shared);
    Rc::try_unwrap(report).map(RefCell::into_inner).unwrap_or_else(|r| {
        let mut r = r.borrow_mut();
        WorkerReport {
            latency: r.latency.clone(),
            by_rule: std::mem::take(&mut r.by_rule),
            fired: std::mem::take(&mut r.fired),
        }
    })
}

/// Commits source offsets once the outputs holding their consequences are flushed. One
/// worker per process commits every partition of the process at the same frontier, recorded
/// beside the offsets so a restart knows which alerts were already written.
struct Durable {
    active: bool,
    last: Instant,
    frontier: u64,
}

impl Durable {
    /// How often outputs are flushed and offsets committed.
    const EVERY: Duration = Duration::from_millis(200);

    fn new(active: bool) -> Self {
        Durable { active, last: Instant::now(), frontier: 0 }
    }

    fn committers(shared: &Shared) -> Vec<Arc<dyn connectors::Committer>> {
        shared.committers.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Every [`Self::EVERY`]: if the output frontier moved, flush the sinks, then commit.
    fn maybe_commit(&mut self, shared: &Shared, probe: &ProbeHandle<u64>) {
        if !self.active || self.last.elapsed() < Self::EVERY {
            return;
        }
        self.last = Instant::now();
        // After a stop request, windows close early; offsets stay where the last full
        // frontier left them so a restart re-reads what those windows held.
        if shared.stop.load(Ordering::Relaxed) {
            return;
        }
        let committers = Self::committers(shared);
        if committers.is_empty() {
            return;
        }
        let frontier = probe.with_frontier(|f| f.first().copied().unwrap_or(u64::MAX));
        if frontier > self.frontier && frontier != u64::MAX && flush_outputs(shared) {
            if !write_checkpoint(shared, frontier) {
                return;
            }
            self.frontier = frontier;
            for c in &committers {
                c.commit(frontier, frontier.max(shared.suppress_below), false);
            }
        }
    }

    /// At the end of input: everything is written, so commit every offset read (unless
    /// stopped early). The recorded frontier stays the last full one: data appended later
    /// must still produce its alerts.
    fn finish(&mut self, shared: &Shared) {
        if !self.active || shared.stop.load(Ordering::Relaxed) {
            return;
        }
        let committers = Self::committers(shared);
        if !committers.is_empty() && flush_outputs(shared) && write_checkpoint(shared, self.frontier) {
            for c in &committers {
                c.commit(u64::MAX, self.frontier.max(shared.suppress_below), true);
            }
        }
    }
}

/// The frontier a checkpoint file records (`None` if there is no file yet).
fn read_checkpoint(path: &std::path::Path) -> Result<Option<u64>, Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let v: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| Error::Config(format!("checkpoint {}: {e}", path.display())))?;
            let f = v["output_frontier"].as_u64().ok_or_else(|| {
                Error::Config(format!("checkpoint {}: no output_frontier number", path.display()))
            })?;
            Ok(Some(f))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Records `frontier` in the checkpoint file (write, sync, rename: never half-written).
fn write_checkpoint(shared: &Shared, frontier: u64) -> bool {
    let Some(path) = shared.config.checkpoint_path() else { return true };
    let frontier = frontier.max(shared.suppress_below);
    let tmp = path.with_extension("checkpoint.tmp");
    let text = serde_json::json!({ "output_frontier": frontier }).to_string();
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        use std::io::Write;
        f.write_all(text.as_bytes())?;
        f.sync_all()
    });
    match written.and_then(|()| std::fs::rename(&tmp, &path)) {
        Ok(()) => true,
        Err(e) => {
            shared.fail(Error::io(&path, e));
            false
        }
    }
}

/// Flushes alerts, dead letters and late events; false (and the run fails) if one cannot be.
fn flush_outputs(shared: &Shared) -> bool {
    if let Err(e) = shared.alerts.lock().unwrap_or_else(PoisonError::into_inner).flush() {
        shared.fail(e);
        return false;
    }
    for file in [&shared.dead_file, &shared.late_file].into_iter().flatten() {
        if let Err(e) = file.lock().unwrap_or_else(PoisonError::into_inner).flush() {
            shared.fail(e);
            return false;
        }
    }
    true
}

fn write_alerts(shared: &Shared, alerts: &[Alert], report: &mut WorkerReport) {
    if alerts.is_empty() {
        return;
    }
    let now = shared.clock.now_nanos();
    let emit = tracing::info_span!(target: "sensorflow::alerts", "emit_alerts", alerts = alerts.len());
    let _emit = emit.enter();
    let mut written: Vec<&Alert> = Vec::new();
    let mut writer = shared.alerts.lock().unwrap_or_else(PoisonError::into_inner);
    for a in alerts {
        let span = shared.ledger.as_ref().map(|l| crate::logging::alert_span(l, a));
        let _span = span.as_ref().map(|s| s.enter());
        match writer.write(a) {
            Ok(true) => {
                tracing::info!(
                    target: "sensorflow::alerts",
                    id = %a.id(),
                    kind = ?a.kind,
                    device = &*a.device,
                    metric = &*a.metric,
                    rule = &*a.key.source,
                    value = a.value,
                    threshold = a.threshold,
                    severity = &*a.severity,
                    "alert"
                );
                if shared.telemetry.is_some() {
                    written.push(a);
                }
            }
            Ok(false) => {
                Counters::add(&shared.counters.alerts_deduplicated, 1);
                continue;
            }
            Err(e) => {
                shared.fail(e);
                return;
            }
        }
        if !report.by_rule.contains_key(&*a.key.source) {
            report.by_rule.insert(a.key.source.to_string(), (0, 0));
        }
        let Some(e) = report.by_rule.get_mut(&*a.key.source) else { continue };
        match a.kind {
            AlertKind::Fired => {
                e.0 += 1;
                if matches!(shared.config.source, crate::connectors::SourceConfig::Simulator(_)) {
                    report.fired.push((
                        a.device.clone(),
                        a.metric.clone(),
                        a.key.window_start,
                        a.key.source.clone(),
                    ));
                }
            }
            AlertKind::Cleared => e.1 += 1,
        }
        if let Some(ingested) = shared.clock.passed_at(a.window_end) {
            let us = now.saturating_sub(ingested) / 1000;
            let _ = report.latency.record(us);
            if let Some(t) = &shared.telemetry {
                t.latency.record(us);
            }
        }
    }
    // Still under the writer's lock, so `/alerts` has the alerts in alert-file order.
    if let Some(t) = &shared.telemetry {
        t.alerts_written(&written);
    }
    drop(writer);
    if let Some(c) = &shared.collected {
        c.alerts.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(alerts);
        let wall =
            SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        c.written_at_ms.lock().unwrap_or_else(PoisonError::into_inner).extend(alerts.iter().map(|_| wall));
    }
}

fn write_dead_letters(shared: &Shared, letters: &[DeadLetter], seen: &mut u64) {
    if let Some(c) = &shared.collected {
        c.dead.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(letters);
    }
    match &shared.dead_file {
        Some(file) => {
            let mut file = file.lock().unwrap_or_else(PoisonError::into_inner);
            for d in letters {
                if let Err(e) = file.write_line(&dead_letter_json(d)) {
                    shared.fail(e);
                    return;
                }
            }
        }
        None => {
            for d in letters {
                *seen += 1;
                if *seen <= STDERR_DEAD_LETTERS {
                    tracing::warn!(target: "sensorflow::dead_letters", "dead letter: {}", dead_letter_json(d));
                }
            }
        }
    }
}

fn write_late(shared: &Shared, late: &[LateEvent]) {
    if let Some(c) = &shared.collected {
        c.late.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(late);
    }
    if let Some(file) = &shared.late_file {
        let mut file = file.lock().unwrap_or_else(PoisonError::into_inner);
        for l in late {
            if let Err(e) = file.write_line(&late_json(l, &shared.dict)) {
                shared.fail(e);
                return;
            }
        }
    }
}

/// Watches the rules file and turns a changed file into collection updates.
struct RulesWatch {
    path: Option<std::path::PathBuf>,
    current: Vec<Control>,
    modified: Option<SystemTime>,
    last_check: Instant,
}

impl RulesWatch {
    fn new(shared: &Shared) -> Self {
        let path = shared.config.rules.clone().filter(|_| shared.config.reload_rules);
        let modified = path.as_ref().and_then(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        RulesWatch { path, current: shared.initial_rules.clone(), modified, last_check: Instant::now() }
    }

    fn poll(&mut self, input: &mut differential_dataflow::input::InputSession<u64, Control, isize>) {
        let Some(path) = &self.path else { return };
        if self.last_check.elapsed() < Duration::from_millis(100) {
            return;
        }
        self.last_check = Instant::now();
        let Ok(modified) = std::fs::metadata(path).and_then(|m| m.modified()) else {
            return;
        };
        if Some(modified) == self.modified {
            return;
        }
        self.modified = Some(modified);
        match load_rules(path) {
            Ok(new) => {
                // Retract everything and insert the new set; differential cancels what is unchanged.
                for c in self.current.drain(..) {
                    input.remove(c);
                }
                for c in &new {
                    input.insert(c.clone());
                }
                tracing::info!("rules reloaded from {} at event time {}", path.display(), input.time());
                self.current = new;
            }
            Err(e) => tracing::warn!("rules reload failed, keeping the previous rules: {e}"),
        }
    }
}

/// Shows a run's progress (records read, rate, alerts) from a thread of its own, reading the
/// counters the workers already keep; stops when dropped.
struct RunProgress {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunProgress {
    fn start(counters: Arc<Counters>, source: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let label = format!("run ({source})");
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("sensorflow-progress".into())
            .spawn(move || {
                let mut meter = sensorflow_operators::progress::Meter::new(
                    &label,
                    None,
                    "records",
                    Duration::from_secs(10),
                );
                let (mut last, mut last_n) = (Instant::now(), 0u64);
                let mut rate = 0.0;
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(200));
                    let n = Counters::get(&counters.records_in);
                    let dt = last.elapsed().as_secs_f64();
                    if dt >= 1.0 {
                        rate = n.saturating_sub(last_n) as f64 / dt;
                        (last, last_n) = (Instant::now(), n);
                    }
                    let alerts = Counters::get(&counters.alerts);
                    let dead = Counters::get(&counters.dead_lettered);
                    meter.set(n, || {
                        format!("{:.2}M records/s, {alerts} alerts, {dead} dead letters", rate / 1e6)
                    });
                }
                meter.finish();
            })
            .ok();
        RunProgress { stop, thread }
    }
}

impl Drop for RunProgress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
