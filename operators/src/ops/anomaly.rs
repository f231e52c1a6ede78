//! The anomaly operator: per-series windows scored in batches by a [`Scorer`](crate::Scorer).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::{Capability, Operator};
use timely::dataflow::StreamVec;

use crate::alert::{Alert, AlertKey, AlertKind};
use crate::event::Event;
use crate::hash::IdHashMap;
use crate::names::{Dictionary, NameCache};
use crate::runtime::evict::{Evictor, StateIdle};
use crate::runtime::metrics::Counters;
use crate::runtime::snapshot::{Cutter, Snapshots};
use crate::scoring::likelihood::{Calibration, LikelihoodParams};
use crate::scoring::normalize::SeriesWindow;
use crate::scoring::{ScorerFactory, CLEAR_MARGIN};

/// Extension trait: score every event's window of recent values.
pub trait Anomalies<'scope> {
    /// Exchanges events by device and keeps, per (device, metric), the last `W` values and an
    /// online normaliser. Events are processed in event-time order once the frontier passes
    /// them (so the result does not depend on how input was split), every full window becomes
    /// one row of a batch, and the batch is scored with one `score_batch` call. A score above
    /// the threshold fires an alert (once per episode, keyed by the event time it began); a
    /// score below `threshold − CLEAR_MARGIN` clears it.
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use timely::dataflow::operators::{Capture, ToStream};
    /// use sensorflow_operators::*;
    ///
    /// // Scores a window by its newest normalised value, so a spike scores high.
    /// struct Newest;
    /// impl Scorer for Newest {
    ///     fn window(&self) -> usize { 4 }
    ///     fn score_batch(&mut self, inputs: &[f32], out: &mut Vec<f32>) {
    ///         out.clear();
    ///         out.extend(inputs.chunks(4).map(|w| (w[3] / 4.0).clamp(0.0, 1.0)));
    ///     }
    ///     fn threshold(&self) -> f32 { 0.5 }
    ///     fn name(&self) -> &str { "newest" }
    /// }
    ///
    /// let dict = Dictionary::default();
    /// let (pump, temp) = (dict.device("pump-1"), dict.metric("temp"));
    /// let scorers: ScorerFactory = Arc::new(|| (Box::new(Newest) as Box<dyn Scorer>, None));
    /// let out = timely::example(move |scope| {
    ///     let values = [10.0, 10.2, 9.9, 10.1, 10.0, 100.0, 10.1, 10.0];
    ///     let events: Vec<Event> = (0u64..)
    ///         .zip(values)
    ///         .map(|(i, value)| Event { device: pump, metric: temp, ts: i * 1000, value, seq: i })
    ///         .collect();
    ///     events.to_stream(scope).container::<Vec<_>>().anomalies(scorers, dict, Counters::shared(), StateIdle(None), None).capture()
    /// });
    /// let alerts: Vec<Alert> = sensorflow_operators::testing::captured(&out);
    /// // The spike at 5 s opens an episode; the next, ordinary value ends it.
    /// let got: Vec<_> = alerts.iter().map(|a| (a.kind, a.key.window_start, a.window_start)).collect();
    /// assert_eq!(got, vec![(AlertKind::Fired, 5000, 5000), (AlertKind::Cleared, 5000, 6000)]);
    /// assert_eq!(alerts[0].device.as_ref(), "pump-1");
    /// ```
    ///
    /// With `snapshots`, the operator writes its state (every series' history, normaliser,
    /// calibration and open alert) at every cut of event time and a resumed run restores it
    /// (see [`crate::runtime::snapshot`]); a snapshot that cannot be restored or written is
    /// reported through [`Snapshots::take_failure`] and the operator starts fresh.
    fn anomalies(
        self,
        scorers: ScorerFactory,
        dict: Dictionary,
        counters: Arc<Counters>,
        idle: StateIdle,
        snapshots: Option<Arc<Snapshots>>,
    ) -> StreamVec<'scope, u64, Alert>;
}

/// What the operator writes at a cut.
#[derive(Serialize)]
struct StateRef<'a> {
    keys: Vec<(&'a (u64, u64), &'a KeyState)>,
    evictor: &'a Evictor,
}

/// What a resumed operator reads back.
#[derive(Deserialize)]
struct StateOwned {
    keys: Vec<((u64, u64), KeyState)>,
    evictor: Evictor,
}

/// A series' model state.
#[derive(Serialize, Deserialize)]
struct KeyState {
    history: History,
    active_since: Option<u64>,
    /// The series' newest event time (for eviction).
    last: u64,
}

/// A series' history. Until its first full window a series keeps only its values, so a fleet
/// of millions of devices that each sent a few events costs a few dozen bytes per series; on
/// the window's last value the window and calibration are built by replaying them in order,
/// which leaves both exactly as if they had seen every value as it came (nothing is scored
/// before the first full window).
#[derive(Serialize, Deserialize)]
enum History {
    Young(Vec<f64>),
    Full(Box<Full>),
}

#[derive(Serialize, Deserialize)]
struct Full {
    window: SeriesWindow,
    calibration: Option<Calibration>,
}

impl History {
    /// Takes the series' next value: whether it broke one of the series' records and whether
    /// the window is full (then scored).
    fn push(&mut self, value: f64, w: usize, calibration: Option<LikelihoodParams>) -> (bool, bool) {
        match self {
            History::Full(f) => {
                let beyond = f.calibration.as_mut().is_some_and(|c| c.observe(value));
                (beyond, f.window.push(value))
            }
            History::Young(values) => {
                values.push(value);
                if values.len() < w.max(1) {
                    return (false, false);
                }
                let mut full =
                    Full { window: SeriesWindow::new(w), calibration: calibration.map(Calibration::new) };
                let (mut beyond, mut filled) = (false, false);
                for &x in values.iter() {
                    beyond = full.calibration.as_mut().is_some_and(|c| c.observe(x));
                    filled = full.window.push(x);
                }
                *self = History::Full(Box::new(full));
                (beyond, filled)
            }
        }
    }

    fn full(&mut self) -> Option<&mut Full> {
        match self {
            History::Full(f) => Some(f),
            History::Young(_) => None,
        }
    }
}

impl<'scope> Anomalies<'scope> for StreamVec<'scope, u64, Event> {
    fn anomalies(
        self,
        scorers: ScorerFactory,
        dict: Dictionary,
        counters: Arc<Counters>,
        idle: StateIdle,
        snapshots: Option<Arc<Snapshots>>,
    ) -> StreamVec<'scope, u64, Alert> {
        let exchange = Exchange::new(|e: &Event| e.device.0);
        let (worker, peers) = (self.scope().index(), self.scope().peers());
        self.unary_frontier(exchange, "Anomalies", move |cap, _info| {
            let (mut scorer, mut reload) = scorers();
            let mut keys: IdHashMap<(u64, u64), KeyState> = IdHashMap::default();
            let mut evictor = Evictor::new(idle);
            // Snapshots: the cut the state is written at next, and input before `resumed_at`
            // already in the restored state.
            let mut cutter = None;
            let mut resumed_at = 0;
            if let Some(snapshots) = snapshots {
                match Cutter::new::<StateOwned>(snapshots.clone(), "anomalies", worker, peers) {
                    Ok((c, restored)) => {
                        if let Some(r) = restored {
                            keys.extend(r.state.keys);
                            evictor = r.state.evictor;
                            resumed_at = r.at;
                        }
                        cutter = Some(c);
                    }
                    Err(e) => snapshots.fail(e),
                }
            }
            // With snapshots the operator holds a capability at its next cut, so the output
            // frontier passes a cut only after the state there is written.
            let mut held: Option<Capability<u64>> = cutter.is_some().then_some(cap);
            // Events waiting for the frontier, by event time: taking the ready ones is a split,
            // not a scan (a slow partition can leave millions waiting).
            let mut pending: BTreeMap<u64, Vec<Event>> = BTreeMap::new();
            let mut ready: Vec<Event> = Vec::new();
            let mut inputs: Vec<f32> = Vec::new();
            // Scored events: index in `ready`, and whether the value jumped beyond its series' range.
            let mut rows: Vec<(usize, bool)> = Vec::new();
            let mut scores: Vec<f32> = Vec::new();
            let mut alerts: Vec<(u64, Alert)> = Vec::new();
            let mut names = NameCache::default();
            move |(input, frontier), output| {
                input.for_each_stamp(|cap, data| {
                    let Some(cap) = cap.retain_least(0) else { return };
                    if held.as_ref().is_none_or(|h| cap.time() < h.time()) {
                        held = Some(cap);
                    }
                    for batch in data {
                        for e in batch.drain(..).filter(|e| e.ts >= resumed_at) {
                            pending.entry(e.ts).or_default().push(e);
                        }
                    }
                });
                let Some(cap) = held.as_mut() else { return };
                let bound = frontier.frontier().iter().copied().min().unwrap_or(u64::MAX);
                // Events before the frontier are complete: take them in event-time order.
                let later = pending.split_off(&bound);
                for (_, mut events) in std::mem::replace(&mut pending, later) {
                    ready.append(&mut events);
                }
                if !ready.is_empty() {
                    if let Some(new) = reload.as_mut().and_then(|r| r()) {
                        scorer = new;
                        keys.clear();
                    }
                    let w = scorer.window();
                    let calibration = scorer.calibration();
                    ready.sort_unstable_by_key(|e| (e.ts, e.device, e.metric, e.seq));
                    // With snapshots, the events are taken in segments that end at cuts, and
                    // the state is written between them.
                    let mut start = 0;
                    while start < ready.len() {
                        let end = match &cutter {
                            Some(c) if c.next() != u64::MAX => {
                                start + ready[start..].partition_point(|e| e.ts < c.next())
                            }
                            _ => ready.len(),
                        };
                        if end == start {
                            if let Some(c) = cutter.as_mut() {
                                c.write(
                                    ready[start].ts,
                                    &StateRef { keys: keys.iter().collect(), evictor: &evictor },
                                );
                            }
                            continue;
                        }
                        inputs.clear();
                        rows.clear();
                        for (idx, e) in ready.iter().enumerate().take(end).skip(start) {
                            let state = keys.entry((e.device.0, e.metric.0)).or_insert_with(|| KeyState {
                                history: History::Young(Vec::new()),
                                active_since: None,
                                last: e.ts,
                            });
                            if state.active_since.is_none() && evictor.expired(state.last, e.ts) {
                                // Back after its idle time: a fresh series.
                                state.history = History::Young(Vec::new());
                                Counters::add(&counters.evicted_series, 1);
                            }
                            state.last = state.last.max(e.ts);
                            evictor.saw(e.ts);
                            let (beyond, filled) = state.history.push(e.value, w, calibration);
                            if let Some(full) = state.history.full().filter(|_| filled) {
                                let at = inputs.len();
                                inputs.resize(at + w, 0.0);
                                full.window.write_normalized(&mut inputs[at..]);
                                rows.push((idx, beyond));
                            }
                        }
                        if !rows.is_empty() {
                            let span = tracing::info_span!(
                                target: "sensorflow::score",
                                "score_batch",
                                model = scorer.name(),
                                windows = rows.len(),
                                event_time = bound,
                            );
                            let started = std::time::Instant::now();
                            span.in_scope(|| scorer.score_batch(&inputs, &mut scores));
                            counters.scoring_us.record(started.elapsed().as_micros() as u64);
                            Counters::add(&counters.windows_scored, rows.len() as u64);
                            let threshold = scorer.threshold();
                            let model: Arc<str> = Arc::from(scorer.name());
                            for (&(idx, beyond), &raw) in rows.iter().zip(scores.iter()) {
                                let e = ready[idx];
                                let Some(state) = keys.get_mut(&(e.device.0, e.metric.0)) else { continue };
                                let score = match state.history.full().and_then(|f| f.calibration.as_mut()) {
                                    Some(c) => c.score(f64::from(raw), beyond) as f32,
                                    None => raw,
                                };
                                let kind = match state.active_since {
                                    None if score > threshold => {
                                        state.active_since = Some(e.ts);
                                        AlertKind::Fired
                                    }
                                    Some(_) if score < threshold - CLEAR_MARGIN => AlertKind::Cleared,
                                    _ => continue,
                                };
                                let since = state.active_since.unwrap_or(e.ts);
                                if kind == AlertKind::Cleared {
                                    state.active_since = None;
                                }
                                let device = names.device(e.device, &dict);
                                let metric = dict.metric_name(e.metric);
                                alerts.push((
                                    e.ts,
                                    Alert {
                                        key: AlertKey {
                                            device: e.device,
                                            source: model.clone(),
                                            window_start: since,
                                        },
                                        kind,
                                        device,
                                        metric_id: e.metric,
                                        metric,
                                        value: f64::from(score),
                                        threshold: f64::from(threshold),
                                        condition: Arc::from(format!("score > {threshold}")),
                                        window_start: e.ts,
                                        window_end: e.ts + 1,
                                        severity: Arc::from("warning"),
                                        site: None,
                                        owner: None,
                                        early_at: None,
                                    },
                                ));
                            }
                        }
                        for (ts, alert) in alerts.drain(..) {
                            let at = ts.max(*cap.time());
                            Counters::add(&counters.alerts, 1);
                            output.session(&cap.delayed(&at)).give(alert);
                        }
                        start = end;
                    }
                    ready.clear();
                    // Series idle for the idle time start fresh; one with an open alert stays.
                    let gone = evictor.sweep(&mut keys, |k| k.active_since.is_none().then_some(k.last));
                    if !gone.is_empty() {
                        tracing::debug!(series = gone.len(), "model state of idle series dropped");
                        Counters::add(&counters.evicted_series, gone.len() as u64);
                    }
                }
                // Everything before the frontier is in the state: write it if a cut has passed.
                let done = frontier.frontier().is_empty();
                if let Some(c) = cutter.as_mut().filter(|c| !done && c.due(bound)) {
                    c.write(bound, &StateRef { keys: keys.iter().collect(), evictor: &evictor });
                }
                // Hold the capability only as far back as the oldest pending event (and the
                // next cut, while input may still come).
                let next_cut = cutter.as_ref().filter(|_| !done).map(Cutter::next);
                let oldest = pending.keys().next().copied();
                match oldest.into_iter().chain(next_cut).min() {
                    Some(t) if t > *cap.time() => cap.downgrade(&t),
                    Some(_) => {}
                    None => held = None,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_young_series_replayed_on_its_first_full_window_matches_one_fed_value_by_value() {
        let w = 8;
        let params = LikelihoodParams::default();
        let values: Vec<f64> =
            (0..40).map(|i| if i == 20 { 500.0 } else { 10.0 + f64::from(i % 5) * 0.3 }).collect();
        let mut young = History::Young(Vec::new());
        let mut window = SeriesWindow::new(w);
        let mut calibration = Calibration::new(params);
        for (i, &v) in values.iter().enumerate() {
            let expect = (calibration.observe(v), window.push(v));
            assert_eq!(young.push(v, w, Some(params)), expect, "value {i}");
            if expect.1 {
                let (mut a, mut b) = (vec![0.0f32; w], vec![0.0f32; w]);
                window.write_normalized(&mut a);
                young.full().expect("full").window.write_normalized(&mut b);
                assert_eq!(a, b, "value {i}");
            }
        }
        assert!(matches!(young, History::Full(_)));
    }
}
