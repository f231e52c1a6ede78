//! The device-rows operator: the per-window values of every metric of a device joined into
//! one row per device and window, scored by a multivariate [`RowModel`] that keeps anomaly
//! episodes (issue 14).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::{Capability, Operator};
use timely::dataflow::StreamVec;

use crate::alert::{Alert, AlertKey, AlertKind};
use crate::event::{DeviceId, MetricId};
use crate::hash::IdHashMap;
use crate::names::{Dictionary, NameCache};
use crate::ops::window::WindowAgg;
use crate::runtime::evict::{Evictor, StateIdle};
use crate::runtime::metrics::Counters;
use crate::runtime::snapshot::{Cutter, Snapshots};

/// Where a device stands after a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowPhase {
    /// Learning the device's normal behaviour.
    WarmUp,
    /// Normal.
    Normal,
    /// Abnormal, not yet for the minimum duration.
    Pending,
    /// An episode is open.
    Open,
}

impl RowPhase {
    /// Name in score files (`warm-up`, `normal`, `pending`, `open`).
    pub fn name(self) -> &'static str {
        match self {
            RowPhase::WarmUp => "warm-up",
            RowPhase::Normal => "normal",
            RowPhase::Pending => "pending",
            RowPhase::Open => "open",
        }
    }
}

/// A row model's verdict on one row.
#[derive(Clone, Debug, PartialEq)]
pub struct RowVerdict {
    /// Score as a multiple of the device's threshold (0 during the warm-up).
    pub score: f64,
    /// The device's state after the row.
    pub phase: RowPhase,
    /// An episode opened on this row; the metrics (indices into the row) that contributed
    /// most, largest first.
    pub fired: Option<Vec<usize>>,
    /// The open episode closed on this row.
    pub cleared: bool,
}

/// A multivariate model of one device, fed its rows in event-time order.
pub trait RowModel: Send {
    /// Scores one row (one value per metric, `None` where the metric sent nothing in the
    /// window).
    fn push(&mut self, values: &[Option<f64>]) -> RowVerdict;
    /// Whether the warm-up is over (the metric set is then fixed).
    fn is_live(&self) -> bool;
    /// The model's whole state, for snapshots (`None`: the model cannot be snapshotted, and a
    /// restored device starts a new warm-up).
    fn snapshot(&self) -> Option<Vec<u8>> {
        None
    }
    /// Takes back a state [`RowModel::snapshot`] wrote for a model of the same metrics; false
    /// (and unchanged) if it does not fit.
    fn restore(&mut self, _state: &[u8]) -> bool {
        false
    }
}

/// Makes the model of a device whose rows carry the given metrics (by name, in column order:
/// sorted by name), `None` if no model applies (for example a device with a single metric,
/// which the series scorer covers).
pub type RowModelFactory = Arc<dyn Fn(&[Arc<str>]) -> Option<Box<dyn RowModel>> + Send + Sync>;

/// One scored row, for `--scores`.
#[derive(Clone, Debug, PartialEq)]
pub struct ScoredRow {
    /// Device name.
    pub device: Arc<str>,
    /// Window start, ms.
    pub ts: u64,
    /// Score ÷ threshold.
    pub score: f64,
    /// State after the row.
    pub phase: RowPhase,
}

/// Receives every scored row (called once per closed window end, per worker).
pub type ScoreSink = Arc<dyn Fn(&[ScoredRow]) + Send + Sync>;

/// The name alerts of the device model carry as their source.
pub const DEVICE_MODEL_SOURCE: &str = "device-model";

/// What a device row needs of a window aggregate (buffered until the frontier passes it).
struct Cell {
    device: DeviceId,
    metric: MetricId,
    start: u64,
    end: u64,
    mean: f64,
}

/// A device in a snapshot.
#[derive(Serialize, Deserialize)]
struct DeviceSnapshot {
    device: u64,
    /// The metrics, with their names (a restored run may not have read them yet).
    metrics: Vec<(u64, String)>,
    model: Option<Vec<u8>>,
    declined: bool,
    open: Option<(u64, u64)>,
    last: u64,
}

/// What the operator writes at a cut.
#[derive(Serialize, Deserialize)]
struct Snapshot {
    devices: Vec<DeviceSnapshot>,
    evictor: Evictor,
}

fn snapshot(devices: &IdHashMap<u64, DeviceState>, evictor: &Evictor, dict: &Dictionary) -> Snapshot {
    Snapshot {
        devices: devices
            .iter()
            .map(|(&device, d)| DeviceSnapshot {
                device,
                metrics: d.metrics.iter().map(|&m| (m.0, dict.metric_name(m).to_string())).collect(),
                model: d.model.as_ref().and_then(|m| m.snapshot()),
                declined: d.declined,
                open: d.open.map(|(since, m)| (since, m.0)),
                last: d.last,
            })
            .collect(),
        evictor: *evictor,
    }
}

/// The devices of a snapshot, their models made by `models` and restored.
fn restore(
    snap: Snapshot,
    models: &RowModelFactory,
    dict: &Dictionary,
) -> (IdHashMap<u64, DeviceState>, Evictor) {
    let mut devices = IdHashMap::default();
    let mut fresh = 0usize;
    for d in snap.devices {
        let columns: Vec<Arc<str>> =
            d.metrics.iter().map(|(_, name)| Arc::<str>::from(name.as_str())).collect();
        let metrics: Vec<MetricId> = d
            .metrics
            .iter()
            .map(|(id, name)| {
                let interned = dict.metric(name);
                if interned.0 == *id {
                    interned
                } else {
                    MetricId(*id)
                }
            })
            .collect();
        let model = d.model.and_then(|state| {
            let mut model = models(&columns)?;
            if model.restore(&state) {
                Some(model)
            } else {
                fresh += 1;
                None
            }
        });
        devices.insert(
            d.device,
            DeviceState {
                metrics,
                model,
                declined: d.declined,
                open: d.open.map(|(since, m)| (since, MetricId(m))),
                last: d.last,
            },
        );
    }
    if fresh > 0 {
        tracing::warn!(devices = fresh, "device models whose snapshot did not fit start a new warm-up");
    }
    (devices, snap.evictor)
}

struct DeviceState {
    /// The device's metrics, ordered by name (so the row does not depend on which worker
    /// interned a name first).
    metrics: Vec<MetricId>,
    model: Option<Box<dyn RowModel>>,
    /// The factory had no model for `metrics` (asked again only when the set grows), so a
    /// device of one metric costs a lookup per window, not a factory call.
    declined: bool,
    /// Start of the window the open episode fired on, and the metric named in it.
    open: Option<(u64, MetricId)>,
    /// End of the device's newest window (for eviction).
    last: u64,
}

/// Extension trait: device rows from window aggregates.
pub trait DeviceRows<'scope> {
    /// Joins the windows of each device (already partitioned by device, as the windows
    /// operator leaves them) into one row per window end, in event-time order once the
    /// frontier has passed the window, and scores it with the device's [`RowModel`]: each
    /// metric's window mean, `None` for a metric with no event in the window (never
    /// invented). A device is tracked from its first window carrying two or more metrics.
    /// A device's metric set is what it sent during the warm-up (a new metric
    /// restarts the warm-up; once live, new metrics are ignored). Emits `fired` when an
    /// episode opens (naming the metric that contributed most) and `cleared` when it closes,
    /// with the same key.
    fn device_rows(
        self,
        models: RowModelFactory,
        scores: Option<ScoreSink>,
        dict: Dictionary,
        counters: Arc<Counters>,
        idle: StateIdle,
        snapshots: Option<Arc<Snapshots>>,
    ) -> StreamVec<'scope, u64, Alert>;
}

impl<'scope> DeviceRows<'scope> for StreamVec<'scope, u64, WindowAgg> {
    fn device_rows(
        self,
        models: RowModelFactory,
        scores: Option<ScoreSink>,
        dict: Dictionary,
        counters: Arc<Counters>,
        idle: StateIdle,
        snapshots: Option<Arc<Snapshots>>,
    ) -> StreamVec<'scope, u64, Alert> {
        let (worker, peers) = (self.scope().index(), self.scope().peers());
        self.unary_frontier(Pipeline, "DeviceRows", move |cap, _info| {
            let mut evictor = Evictor::new(idle);
            let mut pending: BTreeMap<u64, (Capability<u64>, Vec<Cell>)> = BTreeMap::new();
            let mut devices: IdHashMap<u64, DeviceState> = IdHashMap::default();
            // Snapshots (see the anomaly operator): the next cut, a capability held there, and
            // input before `resumed_at` already in the restored state.
            let mut cutter = None;
            let mut resumed_at = 0;
            if let Some(snapshots) = snapshots {
                match Cutter::new::<Snapshot>(snapshots.clone(), "device-rows", worker, peers) {
                    Ok((c, restored)) => {
                        if let Some(r) = restored {
                            (devices, evictor) = restore(r.state, &models, &dict);
                            resumed_at = r.at;
                        }
                        cutter = Some(c);
                    }
                    Err(e) => snapshots.fail(e),
                }
            }
            let mut held: Option<Capability<u64>> = cutter.is_some().then_some(cap);
            let mut names = NameCache::default();
            let mut scored: Vec<ScoredRow> = Vec::new();
            let mut row: Vec<Option<f64>> = Vec::new();
            let source: Arc<str> = Arc::from(DEVICE_MODEL_SOURCE);
            move |(input, frontier), output| {
                input.for_each_stamp(|cap, data| {
                    let Some(cap) = cap.retain_least(0) else { return };
                    if *cap.time() < resumed_at {
                        return;
                    }
                    let slot = pending.entry(*cap.time()).or_insert_with(|| (cap, Vec::new()));
                    for batch in data {
                        slot.1.extend(batch.drain(..).map(|a| Cell {
                            device: a.device,
                            metric: a.metric,
                            start: a.start,
                            end: a.end,
                            mean: a.mean,
                        }));
                    }
                });
                while let Some(entry) = pending.first_entry() {
                    if frontier.less_equal(entry.get().0.time()) {
                        break;
                    }
                    let t = *entry.get().0.time();
                    if let Some(c) = cutter.as_mut().filter(|c| c.due(t)) {
                        c.write(t, &snapshot(&devices, &evictor, &dict));
                    }
                    let (cap, mut aggs) = entry.remove();
                    aggs.sort_unstable_by_key(|a| (a.end, a.device, a.metric));
                    let mut session = output.session(&cap);
                    for group in aggs.chunk_by(|a, b| a.device == b.device && a.end == b.end) {
                        let first = &group[0];
                        let device = first.device;
                        if group.len() < 2 && !devices.contains_key(&device.0) {
                            // No state for a device until a window of it carries two metrics
                            // (a row of one metric is the series model's): a fleet of
                            // one-metric devices costs this operator no memory.
                            continue;
                        }
                        let state = devices.entry(device.0).or_insert_with(|| DeviceState {
                            metrics: Vec::new(),
                            model: None,
                            declined: false,
                            open: None,
                            last: first.end,
                        });
                        if state.open.is_none() && evictor.expired(state.last, first.end) {
                            // Back after its idle time: a fresh device (a new warm-up).
                            state.metrics.clear();
                            state.model = None;
                            state.declined = false;
                            Counters::add(&counters.evicted_devices, 1);
                        }
                        state.last = state.last.max(first.end);
                        evictor.saw(first.end);
                        let live = state.model.as_ref().is_some_and(|m| m.is_live());
                        if !live {
                            let mut grown = false;
                            for a in group {
                                if !state.metrics.contains(&a.metric) {
                                    state.metrics.push(a.metric);
                                    grown = true;
                                }
                            }
                            if grown || (state.model.is_none() && !state.declined) {
                                state.metrics.sort_by_cached_key(|&m| dict.metric_name(m));
                                let columns: Vec<Arc<str>> =
                                    state.metrics.iter().map(|&m| dict.metric_name(m)).collect();
                                state.model = models(&columns);
                                state.declined = state.model.is_none();
                                tracing::debug!(
                                    device = %names.device(device, &dict),
                                    metrics = state.metrics.len(),
                                    "device model (re)starts its warm-up"
                                );
                            }
                        }
                        let Some(model) = state.model.as_mut() else { continue };
                        row.clear();
                        row.extend(state.metrics.iter().map(|&m| {
                            group.iter().find(|a| a.metric == m).map(|a| a.mean).filter(|v| v.is_finite())
                        }));
                        let verdict = model.push(&row);
                        Counters::add(&counters.device_rows_scored, 1);
                        if scores.is_some() {
                            scored.push(ScoredRow {
                                device: names.device(device, &dict),
                                ts: first.start,
                                score: verdict.score,
                                phase: verdict.phase,
                            });
                        }
                        let transition = match (&verdict.fired, verdict.cleared, state.open) {
                            (Some(top), _, None) => {
                                let metric = top
                                    .first()
                                    .and_then(|&i| state.metrics.get(i))
                                    .copied()
                                    .unwrap_or(first.metric);
                                let names: Vec<Arc<str>> = top
                                    .iter()
                                    .filter_map(|&i| state.metrics.get(i))
                                    .map(|&m| dict.metric_name(m))
                                    .collect();
                                state.open = Some((first.start, metric));
                                Some((AlertKind::Fired, first.start, metric, names))
                            }
                            (_, true, Some((since, metric))) => {
                                state.open = None;
                                Some((AlertKind::Cleared, since, metric, Vec::new()))
                            }
                            _ => None,
                        };
                        let Some((kind, since, metric, top)) = transition else { continue };
                        let condition = if top.is_empty() {
                            "device rows back to normal".to_string()
                        } else {
                            let top: Vec<&str> = top.iter().map(|n| n.as_ref()).collect();
                            format!("device rows abnormal; most: {}", top.join(", "))
                        };
                        Counters::add(&counters.alerts, 1);
                        session.give(Alert {
                            key: AlertKey { device, source: source.clone(), window_start: since },
                            kind,
                            device: names.device(device, &dict),
                            metric_id: metric,
                            metric: dict.metric_name(metric),
                            value: verdict.score,
                            threshold: 1.0,
                            condition: Arc::from(condition),
                            window_start: first.start,
                            window_end: first.end,
                            severity: Arc::from("warning"),
                            site: None,
                            owner: None,
                            early_at: None,
                        });
                    }
                    if let Some(sink) = scores.as_ref() {
                        if !scored.is_empty() {
                            sink(&scored);
                            scored.clear();
                        }
                    }
                    // Devices idle for the idle time start fresh (a new warm-up); one with an
                    // open episode stays.
                    let gone = evictor.sweep(&mut devices, |d| d.open.is_none().then_some(d.last));
                    if !gone.is_empty() {
                        if tracing::enabled!(tracing::Level::DEBUG) {
                            let sample: Vec<Arc<str>> =
                                gone.iter().take(5).map(|&d| dict.device_name(DeviceId(d))).collect();
                            tracing::debug!(
                                devices = gone.len(),
                                ?sample,
                                "device models of idle devices dropped"
                            );
                        }
                        Counters::add(&counters.evicted_devices, gone.len() as u64);
                    }
                }
                // Everything before the frontier is in the state: write it if a cut has passed,
                // and hold the next cut while input may still come.
                let bound = frontier.frontier().iter().copied().min();
                match (cutter.as_mut(), bound) {
                    (Some(c), Some(bound)) => {
                        if c.due(bound) {
                            c.write(bound, &snapshot(&devices, &evictor, &dict));
                        }
                        if let Some(h) = held.as_mut() {
                            if c.next() > *h.time() {
                                h.downgrade(&c.next());
                            }
                        }
                    }
                    _ => held = None,
                }
            }
        })
    }
}
