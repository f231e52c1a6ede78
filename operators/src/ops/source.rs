//! The one shape every source has: partitions read by a worker, stamped with event time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::probe::Handle as ProbeHandle;
use timely::dataflow::{Scope, StreamVec};

use crate::diverted::{DeadLetter, LateEvent};
use crate::event::Event;
use crate::names::Dictionary;
use crate::runtime::clock::WatermarkClock;
use crate::runtime::metrics::Counters;
use crate::runtime::watermark::{DeviceClocks, EventTimeMode, Watermarks};

/// What a partition reader had to offer when polled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poll {
    /// It produced records (or is making progress); poll again soon.
    Ready,
    /// Nothing to read right now (a live source); poll again later.
    Pending,
    /// Exhausted for good.
    Done,
}

/// A failure that stops a source.
#[derive(Debug, Clone, thiserror::Error)]
#[error("source {source_name}: {message}")]
pub struct SourceError {
    /// Which source and partition.
    pub source_name: String,
    /// What went wrong.
    pub message: String,
    /// Whether retrying the same read could succeed (network) or not (a corrupt file).
    pub retryable: bool,
}

impl SourceError {
    /// A permanent error.
    pub fn fatal(source_name: impl Into<String>, message: impl Into<String>) -> Self {
        SourceError { source_name: source_name.into(), message: message.into(), retryable: false }
    }
}

/// Records read from one partition in one poll.
#[derive(Debug, Default)]
pub struct SourceBatch {
    /// Parsed events, in read order.
    pub events: Vec<Event>,
    /// Records that failed to parse or validate.
    pub dead: Vec<DeadLetter>,
}

/// One partition of a source (a byte range of a file, a file of a corpus, a Kafka partition),
/// read by exactly one worker. Readers do their own parsing and never panic on bad input:
/// they push a [`DeadLetter`] instead.
pub trait PartitionReader: 'static {
    /// Reads a bounded amount (a chunk of a file, a batch of messages) into `out`.
    fn poll(&mut self, out: &mut SourceBatch) -> Result<Poll, SourceError>;

    /// A name for metrics and traces (`kafka:topic/3`, a file path); empty if the reader
    /// has none, in which case the source names it by worker and position.
    fn name(&self) -> String {
        String::new()
    }

    /// When the reader next has events, if it knows (a paced replay's next tick): a quiet
    /// source looks again then rather than after its usual nap, so a paced event is read as it
    /// falls due.
    fn next_due(&self) -> Option<Instant> {
        None
    }
}

/// One source batch as a [`BatchHook`] sees it.
#[derive(Debug)]
pub struct BatchInfo<'a> {
    /// The partition's name.
    pub partition: &'a str,
    /// This process's sequence number of the batch (unique within the process).
    pub batch: u64,
    /// The distinct devices with an on-time event in the batch, sorted.
    pub devices: &'a [u64],
    /// Least and greatest event time of its on-time events.
    pub ts_range: (u64, u64),
}

/// Called for every source batch with on-time events, inside the batch's `source_batch`
/// span, so a tracer can remember which batch and partition carried which device's events.
/// Only installed when tracing is exported: gathering `devices` costs a sort per batch.
pub trait BatchHook: Send + Sync + 'static {
    /// Records one batch.
    fn batch(&self, span: &tracing::Span, info: BatchInfo<'_>);
}

/// What to do with a record that fails to parse.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BadRecordPolicy {
    /// Stop the source (and the run) with an error naming the record.
    Fail,
    /// Divert it to the dead-letter output, count it, and carry on.
    #[default]
    DeadLetter,
}

/// Guards against broken device clocks: an event out of range goes to the dead letters with
/// the reason "timestamp out of range" and never moves its partition's watermark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockGuard {
    /// Events before this time (epoch ms) are out of range.
    pub min_ts_ms: u64,
    /// Events further ahead of the wall clock than this (ms) are out of range (`None`: no
    /// limit, for synthetic data stamped in the future).
    pub max_future_ms: Option<u64>,
    /// Events further ahead of their partition's newest event than this (ms) are held; if
    /// `confirm` of them arrive in a row the partition has really moved on (a gap in a
    /// recording, the next recording of a concatenated file) and they are kept; so are they
    /// if the partition ends first. An event in range before that shows them out of range
    /// (`None`: no limit).
    pub max_jump_ms: Option<u64>,
    /// Events in a row beyond the jump that confirm it, ≥ 1.
    pub confirm: usize,
}

impl Default for ClockGuard {
    /// More than a day ahead of the wall clock, or a jump of more than a day that 64 events
    /// in a row (or the end of the partition) do not confirm. No floor by default (tests and synthetic data start at
    /// the epoch); a clock reset to 1970 in a live stream shows as late events, which do not
    /// move the watermark either. `--min-ts 946684800000` (2000-01-01) makes them dead letters.
    fn default() -> Self {
        ClockGuard {
            min_ts_ms: 0,
            max_future_ms: Some(86_400_000),
            max_jump_ms: Some(86_400_000),
            confirm: 64,
        }
    }
}

impl ClockGuard {
    /// No guard at all.
    pub fn off() -> Self {
        ClockGuard { min_ts_ms: 0, max_future_ms: None, max_jump_ms: None, confirm: 1 }
    }
}

/// Settings shared by every source.
#[derive(Clone, Debug)]
pub struct SourceOptions {
    /// How far behind its partition's newest event (its device's, in
    /// [`EventTimeMode::Device`]) an event may be and still count.
    pub lateness_ms: u64,
    /// Against whose progress events are judged late: their partition's (default) or their
    /// device's, for files ordered per device.
    pub event_time: EventTimeMode,
    /// How long a partition may have nothing to read before it stops holding the frontier.
    pub idle_timeout: Duration,
    /// What to do with bad records.
    pub policy: BadRecordPolicy,
    /// Timestamp guards.
    pub clock_guard: ClockGuard,
    /// Flow control: the most events this worker's source may have in the graph, not yet
    /// through to the end (see [`SourceContext::done`]). `None`: no bound.
    pub max_in_flight: Option<usize>,
    /// Live sources only, opt-in: the watermark also follows the wall clock, this far behind
    /// it, so a window closes at most this long after its end even when every partition has
    /// gone quiet. It does so only while the source has read everything there is and holds
    /// nothing back, so a backlog is read in event time. Events it overtakes are late
    /// (counted, and kept with `--late-events`).
    /// Which events those are depends on arrival timing, so runs in this mode are not
    /// deterministic; `None` (the default) keeps pure event time.
    pub wall_clock_delay: Option<Duration>,
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions {
            lateness_ms: 0,
            event_time: EventTimeMode::Partition,
            idle_timeout: Duration::from_secs(5),
            policy: BadRecordPolicy::DeadLetter,
            clock_guard: ClockGuard::default(),
            max_in_flight: None,
            wall_clock_delay: None,
        }
    }
}

/// The streams a source produces.
#[derive(Debug)]
pub struct SourceStreams<'scope> {
    /// Good, on-time events; each batch is stamped with a time at or below all its events.
    pub events: StreamVec<'scope, u64, Event>,
    /// Events behind their partition's watermark (or, in [`EventTimeMode::Device`], their
    /// device's newest minus the lateness).
    pub late: StreamVec<'scope, u64, LateEvent>,
    /// Records that failed to parse or validate.
    pub dead: StreamVec<'scope, u64, DeadLetter>,
}

/// Where a source reports a fatal error; the run checks it once the dataflow ends.
pub type ErrorSlot = Arc<Mutex<Option<SourceError>>>;

/// What a source shares with the rest of the process.
#[derive(Clone, Debug, Default)]
pub struct SourceContext {
    /// Counters to add to.
    pub counters: Arc<Counters>,
    /// Where to record watermark moves for latency, with this worker's local index.
    pub clock: Option<(WatermarkClock, usize)>,
    /// Where to put a fatal error.
    pub errors: ErrorSlot,
    /// Set to end the source early (run time limit, shutdown): it drops its capabilities.
    pub stop: Arc<AtomicBool>,
    /// This worker's index within its process (for per-worker counters).
    pub worker: usize,
    /// Sees every batch, when traces are exported.
    pub batch_hook: Option<Arc<dyn BatchHook>>,
    /// Names, to write events the clock guard rejects as readable dead letters.
    pub names: Dictionary,
    /// The probe at the end of the graph, over all workers and processes: with
    /// [`SourceOptions::max_in_flight`], the source holds back a partition while too many of
    /// the events it sent are not yet past it.
    pub done: Option<ProbeHandle<u64>>,
}

impl std::fmt::Debug for dyn BatchHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BatchHook")
    }
}

/// Milliseconds since the epoch by the wall clock (0 if the clock is before it).
fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Process-wide batch numbers for [`BatchInfo::batch`].
static BATCHES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Builds a source operator reading `readers` (this worker's partitions).
///
/// Every batch is sent at the source's current capability, the least watermark over its
/// live partitions, so the timely timestamp is a lower bound on the event times in the batch
/// and windows can close as soon as the frontier passes their end. Events below their
/// partition's watermark (or below the capability, if an idle partition wakes up behind it)
/// go to the late output. When every partition is done the capabilities are dropped.
///
/// With [`EventTimeMode::Device`] an event is late if it is behind its device's newest minus
/// the lateness, or behind its partition's newest minus the larger of the lateness and the
/// spread; the partition's watermark is the latter, so no event still acceptable is below
/// it, and an event late in this mode is late in the partition mode too. The clock guard's
/// jumps are judged against the partition's newest in both modes.
///
/// # Examples
/// ```
/// use timely::dataflow::operators::Capture;
/// use sensorflow_operators::*;
///
/// let ev = |ts, seq| Event { device: DeviceId(1), metric: MetricId(1), ts, value: 1.0, seq };
/// let (events, late) = timely::example(move |scope| {
///     // One partition read an event at a time, no lateness allowed: 2 s comes after 5 s.
///     let reader = VecReader::new(vec![ev(1_000, 0), ev(5_000, 1), ev(2_000, 2), ev(6_000, 3)], 1);
///     let readers = vec![Box::new(reader) as Box<dyn PartitionReader>];
///     let s = partitioned_source(scope, "Example", readers, SourceOptions::default(), SourceContext::default());
///     (s.events.capture(), s.late.capture())
/// });
/// let on_time: Vec<u64> = sensorflow_operators::testing::captured(&events).iter().map(|e| e.ts).collect();
/// assert_eq!(on_time, vec![1_000, 5_000, 6_000]);
/// let late: Vec<LateEvent> = sensorflow_operators::testing::captured(&late);
/// assert_eq!(late.iter().map(|l| (l.event.ts, l.watermark)).collect::<Vec<_>>(), vec![(2_000, 5_000)]);
/// ```
pub fn partitioned_source<'scope>(
    scope: Scope<'scope, u64>,
    name: &str,
    mut readers: Vec<Box<dyn PartitionReader>>,
    options: SourceOptions,
    ctx: SourceContext,
) -> SourceStreams<'scope> {
    let SourceContext { counters, clock, errors, stop, worker, batch_hook, names, done } = ctx;
    let flow = done.zip(options.max_in_flight);
    let source = name.trim_start_matches("Source(").trim_end_matches(')');
    let gauges: Vec<_> = readers
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let name = r.name();
            let name = if name.is_empty() { format!("{source}/w{worker}p{i}") } else { name };
            counters.register_partition(name, worker)
        })
        .collect();
    let mut builder = OperatorBuilder::new(name.to_owned(), scope);
    let info = builder.operator_info();
    let activator = scope.activator_for(info.address);
    let (ev_out, events) = builder.new_output::<Vec<Event>>();
    let (late_out, late) = builder.new_output::<Vec<LateEvent>>();
    let (dead_out, dead) = builder.new_output::<Vec<DeadLetter>>();
    let mut ev_out = OutputBuilder::<u64, CapacityContainerBuilder<Vec<Event>>>::from(ev_out);
    let mut late_out = OutputBuilder::<u64, CapacityContainerBuilder<Vec<LateEvent>>>::from(late_out);
    let mut dead_out = OutputBuilder::<u64, CapacityContainerBuilder<Vec<DeadLetter>>>::from(dead_out);

    builder.build(move |caps| {
        let mut caps = Some(caps);
        let mut marks = Watermarks::with_mode(
            readers.len(),
            options.lateness_ms,
            options.event_time,
            options.idle_timeout,
        );
        // Per partition in device mode (empty otherwise): each device's newest event time.
        let mut device_clocks: Vec<DeviceClocks> = match options.event_time {
            EventTimeMode::Partition => Vec::new(),
            EventTimeMode::Device { .. } => vec![DeviceClocks::new(options.lateness_ms); readers.len()],
        };
        let mut batch = SourceBatch::default();
        let mut late_buf: Vec<LateEvent> = Vec::new();
        let mut devices: Vec<u64> = Vec::new();
        let guard = options.clock_guard;
        // Per partition: events beyond the jump limit, waiting for confirmation.
        let mut jumped: Vec<Vec<Event>> = vec![Vec::new(); readers.len()];
        let mut kept_buf: Vec<Event> = Vec::new();
        // Per partition: its first device, and whether it has carried more than one.
        let mut first_device: Vec<Option<crate::event::DeviceId>> = vec![None; readers.len()];
        let mut mixed: Vec<bool> = vec![false; readers.len()];
        let mut rejected: Vec<Event> = Vec::new();
        // Flow control: events sent and not yet past the end of the graph, by the newest
        // event time of the partition when they were sent (they are past once the end's
        // frontier is beyond it), and when each held partition was last looked at.
        let mut outstanding: std::collections::BTreeMap<u64, usize> = std::collections::BTreeMap::new();
        let mut in_flight = 0usize;
        let mut hold_since: Vec<Option<Instant>> = vec![None; readers.len()];
        move |_frontiers| {
            let Some(held) = caps.as_mut() else { return };
            let started = Instant::now();
            let floor = *held[0].time();
            let mut progressed = false;
            let mut holding = false;
            let end = flow
                .as_ref()
                .map(|(probe, _)| probe.with_frontier(|f| f.first().copied().unwrap_or(u64::MAX)));
            if let Some(end) = end {
                let still = outstanding.split_off(&end);
                in_flight -= outstanding.values().sum::<usize>();
                outstanding = still;
            }
            let mut failure: Option<SourceError> = None;
            {
                let mut ev_out = ev_out.activate();
                let mut late_out = late_out.activate();
                let mut dead_out = dead_out.activate();
                for (part, reader) in readers.iter_mut().enumerate() {
                    if marks.is_done(part) {
                        continue;
                    }
                    let gauge = &gauges[part];
                    // Hold back a partition ahead of the graph's end while too many events are in
                    // flight. The partition at the least watermark is never held (the end's
                    // frontier cannot pass it until it reads on), so the graph always drains.
                    if let (Some(end), Some((_, max))) = (end, flow.as_ref()) {
                        if in_flight >= *max && marks.watermark(part).max(floor) > end {
                            let now = Instant::now();
                            match hold_since[part].replace(now) {
                                Some(since) => {
                                    let us = now.duration_since(since).as_micros() as u64;
                                    gauge.held_back_us.fetch_add(us, Ordering::Relaxed);
                                }
                                None => {
                                    gauge.held_back.fetch_add(1, Ordering::Relaxed);
                                    gauge.holding.store(true, Ordering::Relaxed);
                                }
                            }
                            // Held is not idle: the partition still holds the watermark.
                            marks.active(part);
                            holding = true;
                            continue;
                        }
                    }
                    if let Some(since) = hold_since[part].take() {
                        gauge.held_back_us.fetch_add(since.elapsed().as_micros() as u64, Ordering::Relaxed);
                        gauge.holding.store(false, Ordering::Relaxed);
                    }
                    batch.events.clear();
                    batch.dead.clear();
                    let span = tracing::info_span!(
                        target: "sensorflow::source",
                        "source_batch",
                        partition = gauge.name.as_str(),
                        worker,
                        batch = tracing::field::Empty,
                        events = tracing::field::Empty,
                        dead = tracing::field::Empty,
                        late = tracing::field::Empty,
                    );
                    let _entered = span.enter();
                    match reader.poll(&mut batch) {
                        Ok(Poll::Ready) => {
                            marks.active(part);
                            progressed = true;
                        }
                        Ok(Poll::Pending) => marks.quiet(part, started),
                        Ok(Poll::Done) => {
                            marks.finish(part);
                            gauge.done.store(true, Ordering::Relaxed);
                        }
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                    let read = (batch.events.len() + batch.dead.len()) as u64;
                    Counters::add(&counters.records_in, read);
                    if let Some(w) = counters.worker(worker) {
                        Counters::add(&w.records_in, read);
                    }
                    if read > 0 && !span.is_disabled() {
                        span.record("events", batch.events.len());
                        span.record("dead", batch.dead.len());
                    }
                    if !batch.dead.is_empty() {
                        let fail = (options.policy == BadRecordPolicy::Fail).then(|| {
                            let d = &batch.dead[0];
                            SourceError::fatal(
                                d.source.clone(),
                                format!("bad record at {}: {} (policy is fail)", d.position, d.reason),
                            )
                        });
                        Counters::add(&counters.dead_lettered, batch.dead.len() as u64);
                        dead_out.session(&held[2]).give_container(&mut batch.dead);
                        if fail.is_some() {
                            failure = fail;
                            break;
                        }
                    }
                    let flush_jumped = marks.is_done(part) && !jumped[part].is_empty();
                    if batch.events.is_empty() && !flush_jumped {
                        continue;
                    }
                    // Split off out-of-range and late events, tracking the running watermark.
                    let hold_back = marks.hold_back();
                    let mut max_ts = marks.max_ts(part);
                    let mut mark = marks.watermark(part).max(floor);
                    let now_ms = guard.max_future_ms.map(|f| wall_clock_ms().saturating_add(f));
                    kept_buf.clear();
                    let mut keeper = Keeper {
                        device_clock: device_clocks.get_mut(part),
                        kept: &mut kept_buf,
                        late: &mut late_buf,
                        hold_back,
                        floor,
                    };
                    for e in batch.events.drain(..) {
                        match first_device[part] {
                            None => first_device[part] = Some(e.device),
                            Some(d) if d != e.device => mixed[part] = true,
                            Some(_) => {}
                        }
                        if e.ts < guard.min_ts_ms || now_ms.is_some_and(|limit| e.ts > limit) {
                            rejected.push(e);
                            continue;
                        }
                        let beyond = match (guard.max_jump_ms, max_ts) {
                            (Some(jump), Some(m)) => e.ts > m.saturating_add(jump),
                            _ => false,
                        };
                        if beyond {
                            jumped[part].push(e);
                            if jumped[part].len() >= guard.confirm.max(1) {
                                // Confirmed: the partition has moved on.
                                for h in std::mem::take(&mut jumped[part]) {
                                    keeper.keep(h, &mut max_ts, &mut mark);
                                }
                            }
                            continue;
                        }
                        // An event in range: whatever jumped was a broken clock.
                        if !jumped[part].is_empty() {
                            rejected.append(&mut jumped[part]);
                        }
                        keeper.keep(e, &mut max_ts, &mut mark);
                    }
                    if marks.is_done(part) && !jumped[part].is_empty() {
                        // The partition ended after the jump with nothing to contradict it. Keep
                        // the events if they are a gap before a recording's last rows — one
                        // device's partition, or several devices agreeing — not one clock.
                        let held = &jumped[part];
                        let agree = held.iter().any(|e| e.device != held[0].device);
                        if agree || !mixed[part] {
                            for h in std::mem::take(&mut jumped[part]) {
                                keeper.keep(h, &mut max_ts, &mut mark);
                            }
                        } else {
                            rejected.append(&mut jumped[part]);
                        }
                    }
                    if !rejected.is_empty() {
                        let source = gauge.name.as_str();
                        let mut letters: Vec<DeadLetter> = rejected
                            .drain(..)
                            .map(|e| {
                                let device = names.device_name(e.device);
                                counters.clock_rejected(device.as_ref(), 1);
                                let raw = format!(
                                    r#"{{"device":{:?},"metric":{:?},"ts":{},"value":{},"seq":{}}}"#,
                                    device.as_ref(),
                                    names.metric_name(e.metric).as_ref(),
                                    e.ts,
                                    e.value,
                                    e.seq
                                );
                                DeadLetter::new(source, 0, "timestamp out of range", raw.as_bytes())
                            })
                            .collect();
                        Counters::add(&counters.dead_lettered, letters.len() as u64);
                        dead_out.session(&held[2]).give_container(&mut letters);
                    }
                    std::mem::swap(&mut batch.events, &mut kept_buf);
                    let kept = batch.events.len();
                    let max_ts = max_ts.unwrap_or(0);
                    if kept > 0 && flow.is_some() {
                        *outstanding.entry(max_ts).or_default() += kept;
                        in_flight += kept;
                    }
                    if kept > 0 {
                        marks.observe(part, max_ts);
                        if let Some(d) = device_clocks.get_mut(part) {
                            d.sweep(marks.watermark(part).max(floor));
                        }
                        gauge.max_ts_ms.store(max_ts, Ordering::Relaxed);
                        gauge.watermark_ms.store(marks.watermark(part).max(floor), Ordering::Relaxed);
                        if let Some(w) = counters.worker(worker) {
                            Counters::add(&w.events_out, kept as u64);
                        }
                        if !span.is_disabled() {
                            let number = BATCHES.fetch_add(1, Ordering::Relaxed);
                            span.record("batch", number);
                            span.record("late", late_buf.len());
                            if let Some(hook) = &batch_hook {
                                devices.clear();
                                devices.extend(batch.events.iter().map(|e| e.device.0));
                                devices.sort_unstable();
                                devices.dedup();
                                let lo = batch.events.iter().map(|e| e.ts).min().unwrap_or(0);
                                hook.batch(
                                    &span,
                                    BatchInfo {
                                        partition: &gauge.name,
                                        batch: number,
                                        devices: &devices,
                                        ts_range: (lo, max_ts),
                                    },
                                );
                            }
                        }
                        ev_out.session(&held[0]).give_container(&mut batch.events);
                    }
                    if !late_buf.is_empty() {
                        Counters::add(&counters.late, late_buf.len() as u64);
                        late_out.session(&held[1]).give_container(&mut late_buf);
                    }
                }
            }
            let failed = failure.is_some();
            if let Some(e) = failure {
                crate::lock(&errors).get_or_insert(e);
            }
            // A failure ends the source as the last partition's end or a stop does.
            if failed || marks.all_done() || stop.load(Ordering::Relaxed) {
                caps = None;
                if let Some((clock, w)) = &clock {
                    clock.advance(*w, u64::MAX, started);
                }
                return;
            }
            let now = Instant::now();
            let mut front = marks.frontier(now);
            // Only once everything readable has been read and nothing is held back: a backlog
            // (consumer lag at start, a replay after a restart, a burst held by flow control)
            // is read in event time, never overtaken by the wall clock.
            if let (Some(delay), false, false) = (options.wall_clock_delay, progressed, holding) {
                let wall = wall_clock_ms().saturating_sub(delay.as_millis() as u64);
                front = Some(front.map_or(wall, |f| f.max(wall)));
            }
            if let Some(front) = front {
                if front > floor {
                    for cap in held.iter_mut() {
                        cap.downgrade(&front);
                    }
                    if let Some((clock, w)) = &clock {
                        clock.advance(*w, front, started);
                    }
                }
            }
            if progressed {
                activator.activate();
            } else if holding {
                // Held back: look again once the graph has had a step to drain.
                activator.activate_after(Duration::from_micros(200));
            } else {
                // Live partitions are quiet: come back soon, and no later than when one turns idle.
                let nap = Duration::from_millis(2);
                let nap = marks.next_idle_deadline(now).map_or(nap, |d| d.min(nap));
                let due = readers.iter().filter_map(|r| r.next_due()).min();
                let nap = due.map_or(nap, |d| d.saturating_duration_since(now).min(nap));
                activator.activate_after(nap);
            }
        }
    });

    SourceStreams { events, late, dead }
}

/// A reader over events already in memory, in chunks; for tests, benchmarks and examples.
#[derive(Debug)]
pub struct VecReader {
    events: std::vec::IntoIter<Event>,
    chunk: usize,
}

impl VecReader {
    /// Reads `events` in chunks of `chunk`.
    pub fn new(events: Vec<Event>, chunk: usize) -> Self {
        VecReader { events: events.into_iter(), chunk: chunk.max(1) }
    }

    /// Worker `index` of `peers`'s readers over in-memory `partitions`: partition `p` is read,
    /// in chunks of `chunk`, by worker `p % peers`.
    pub fn for_worker(
        partitions: &[Vec<Event>],
        index: usize,
        peers: usize,
        chunk: usize,
    ) -> Vec<Box<dyn PartitionReader>> {
        partitions
            .iter()
            .enumerate()
            .filter(|(p, _)| p % peers == index)
            .map(|(_, events)| Box::new(VecReader::new(events.clone(), chunk)) as Box<dyn PartitionReader>)
            .collect()
    }
}

impl PartitionReader for VecReader {
    fn poll(&mut self, out: &mut SourceBatch) -> Result<Poll, SourceError> {
        out.events.extend(self.events.by_ref().take(self.chunk));
        Ok(if out.events.is_empty() { Poll::Done } else { Poll::Ready })
    }
}

/// Where a source batch's in-range events go: on time into `kept` (moving the partition's
/// newest time and watermark), behind the watermark (or, in device mode, the device's own
/// bound) into `late`. A struct with an inlined method rather than a closure, so the per-event
/// path is not a call.
struct Keeper<'a> {
    device_clock: Option<&'a mut DeviceClocks>,
    kept: &'a mut Vec<Event>,
    late: &'a mut Vec<LateEvent>,
    hold_back: u64,
    floor: u64,
}

impl Keeper<'_> {
    #[inline(always)]
    fn keep(&mut self, e: Event, max_ts: &mut Option<u64>, mark: &mut u64) {
        // In device mode the device's own progress may make it late too.
        let bound = match self.device_clock.as_deref() {
            None => *mark,
            Some(d) => d.bound(e.device.0).max(*mark),
        };
        if e.ts < bound {
            self.late.push(LateEvent { event: e, watermark: bound });
            return;
        }
        if let Some(d) = self.device_clock.as_deref_mut() {
            d.observe(e.device.0, e.ts);
        }
        if max_ts.is_none_or(|m| e.ts > m) {
            *max_ts = Some(e.ts);
            *mark = e.ts.saturating_sub(self.hold_back).max(self.floor);
        }
        self.kept.push(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{DeviceId, MetricId};
    use timely::dataflow::operators::Capture;

    fn ev(device: u64, ts: u64) -> Event {
        Event { device: DeviceId(device), metric: MetricId(1), ts, value: 1.0, seq: ts }
    }

    /// One partition read an event at a time; the on-time times and the (time, bound) of
    /// the late ones.
    fn judge(events: Vec<Event>, options: SourceOptions) -> (Vec<u64>, Vec<(u64, u64)>) {
        let (on_time, late) = timely::example(move |scope| {
            let readers = vec![Box::new(VecReader::new(events, 1)) as Box<dyn PartitionReader>];
            let s = partitioned_source(scope, "Judge", readers, options, SourceContext::default());
            (s.events.capture(), s.late.capture())
        });
        let on_time: Vec<Event> = crate::testing::captured(&on_time);
        let late: Vec<LateEvent> = crate::testing::captured(&late);
        (on_time.iter().map(|e| e.ts).collect(), late.iter().map(|l| (l.event.ts, l.watermark)).collect())
    }

    #[test]
    fn device_mode_judges_each_device_by_its_own_newest_within_the_spread() {
        let options = SourceOptions {
            lateness_ms: 100,
            event_time: EventTimeMode::Device { spread_ms: 6_000 },
            ..SourceOptions::default()
        };
        let events = vec![
            ev(1, 10_000),
            ev(2, 5_000), // a new device 5 s behind: within the spread
            ev(2, 6_000),
            ev(1, 9_950), // behind its own newest, within the lateness
            ev(2, 5_850), // behind its own newest by more than the lateness
            ev(3, 3_999), // a new device more than the spread behind the partition's newest
            ev(3, 4_000), // exactly the spread behind: on time
            ev(1, 9_000), // behind its own newest by more than the lateness
        ];
        let (on_time, late) = judge(events.clone(), options);
        assert_eq!(on_time, vec![10_000, 5_000, 6_000, 9_950, 4_000]);
        assert_eq!(late, vec![(5_850, 5_900), (3_999, 4_000), (9_000, 9_900)]);
        // The same events by partition: everything behind 10 s − 100 ms is late.
        let (on_time, _) = judge(events, SourceOptions { lateness_ms: 100, ..SourceOptions::default() });
        assert_eq!(on_time, vec![10_000, 9_950]);
    }

    #[test]
    fn device_mode_spread_bound_makes_a_new_device_late_once_the_partition_moves_on() {
        // The spread bound follows the partition's newest event, whichever device set it.
        let options = SourceOptions {
            event_time: EventTimeMode::Device { spread_ms: 1_000 },
            ..SourceOptions::default()
        };
        let events = vec![ev(1, 1_000), ev(2, 500), ev(1, 5_000), ev(3, 3_999), ev(2, 4_000), ev(4, 4_500)];
        let (on_time, late) = judge(events, options);
        assert_eq!(on_time, vec![1_000, 500, 5_000, 4_000, 4_500]);
        assert_eq!(late, vec![(3_999, 4_000)]);
    }
}
