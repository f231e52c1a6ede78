//! Rig faults: the kinds, their committed sizes, the schedule that places them after the
//! warm-up, and how each changes a sensor's reading.
//!
//! Sizes are fixed here, before any detector is tuned on the benchmark, and must not be
//! changed to flatter one: a size is the largest deviation from the fault-free reading (the
//! same seed without faults), in units of the affected sensor's noise σ.

use serde::Serialize;

use super::shapes::RigSpec;
use crate::synth::SplitMix64;

/// The kinds of rig fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// Mechanical wear (bearings, screw): two or three sensors creep up (or down) together,
    /// linearly from 0 to the size at the fault's end.
    Wear,
    /// A blockage (strainer, filter, die): flow falls while pressure and current rise;
    /// reaches its size over the first third of the fault, then holds.
    Clogging,
    /// A fouled heat exchanger (HVAC coil): supply air warms while the valve opens further.
    Fouling,
    /// A compressed-air leak: the compressor runs faster and draws more for the same demand
    /// while the discharge pressure sags.
    Leak,
    /// One sensor drifts linearly from 0 to the size.
    Drift,
    /// One sensor repeats its reading at the fault's start.
    Stuck,
    /// One sensor sends nothing (missing cells).
    Dropout,
    /// One sensor reads off by a constant bias (a calibration error), small enough to stay in
    /// the sensor's normal range: visible only against the sensors it should agree with.
    Offset,
    /// One sensor stops following its drivers: its target freezes at the fault's start while
    /// its noise goes on (a wrong wire, a frozen upstream value, a bypassed measurement).
    Decouple,
    /// One lagged sensor answers [`LAG_FACTOR`] times slower (a fouled thermowell, a sensor
    /// pulled out of its pocket): only the dynamics of the relation change.
    LagChange,
}

/// The broad class of a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultClass {
    /// The machine degrades (wear).
    Mechanical,
    /// The process changes (clogging, fouling, leak).
    Process,
    /// One sensor misbehaves (drift, stuck, dropout, offset).
    Sensor,
    /// A relation between sensors breaks (decouple, lag change).
    Relation,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 10] = [
        FaultKind::Wear,
        FaultKind::Clogging,
        FaultKind::Fouling,
        FaultKind::Leak,
        FaultKind::Drift,
        FaultKind::Stuck,
        FaultKind::Dropout,
        FaultKind::Offset,
        FaultKind::Decouple,
        FaultKind::LagChange,
    ];

    /// The one-sensor kinds every rig can suffer, as drawn: the three that only the relations
    /// between sensors reveal (offset, decouple, lag change) twice as often as the others.
    /// Each of the rig's [`super::Mechanism`]s comes on top, once.
    pub const GENERIC: [FaultKind; 9] = [
        FaultKind::Drift,
        FaultKind::Stuck,
        FaultKind::Dropout,
        FaultKind::Offset,
        FaultKind::Offset,
        FaultKind::Decouple,
        FaultKind::Decouple,
        FaultKind::LagChange,
        FaultKind::LagChange,
    ];

    /// Name used in label files.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Wear => "wear",
            FaultKind::Clogging => "clogging",
            FaultKind::Fouling => "fouling",
            FaultKind::Leak => "leak",
            FaultKind::Drift => "drift",
            FaultKind::Stuck => "stuck",
            FaultKind::Dropout => "dropout",
            FaultKind::Offset => "offset",
            FaultKind::Decouple => "decouple",
            FaultKind::LagChange => "lag-change",
        }
    }

    /// The kind's class.
    pub fn class(self) -> FaultClass {
        match self {
            FaultKind::Wear => FaultClass::Mechanical,
            FaultKind::Clogging | FaultKind::Fouling | FaultKind::Leak => FaultClass::Process,
            FaultKind::Drift | FaultKind::Stuck | FaultKind::Dropout | FaultKind::Offset => {
                FaultClass::Sensor
            }
            FaultKind::Decouple | FaultKind::LagChange => FaultClass::Relation,
        }
    }

    /// The sizes (in σ of each affected sensor's noise) a fault of this kind is drawn from,
    /// uniformly; empty for kinds without a size (stuck, dropout, decouple, lag change).
    pub fn sizes(self) -> &'static [f64] {
        match self {
            FaultKind::Wear => &WEAR_SIGMAS,
            FaultKind::Clogging | FaultKind::Fouling | FaultKind::Leak => &PROCESS_SIGMAS,
            FaultKind::Drift => &DRIFT_SIGMAS,
            FaultKind::Offset => &OFFSET_SIGMAS,
            FaultKind::Stuck | FaultKind::Dropout | FaultKind::Decouple | FaultKind::LagChange => &[],
        }
    }
}

/// Wear sizes, σ at the fault's end (half of them no larger than 2σ).
pub const WEAR_SIGMAS: [f64; 4] = [1.5, 2.0, 3.0, 6.0];
/// Clogging, fouling and leak sizes, σ once established (two of three no larger than 2σ).
pub const PROCESS_SIGMAS: [f64; 3] = [1.0, 2.0, 4.0];
/// Drift sizes, σ at the fault's end.
pub const DRIFT_SIGMAS: [f64; 3] = [2.0, 4.0, 8.0];
/// Offset sizes, σ (all no larger than 2σ).
pub const OFFSET_SIGMAS: [f64; 3] = [1.0, 1.5, 2.0];
/// A lag change multiplies the sensor's time constant by this.
pub const LAG_FACTOR: f64 = 4.0;

/// One injected fault: rows `[start_row, end_row)`, the sensors it affects (column indices)
/// and its size in σ (`None` for kinds without one).
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    /// Kind.
    pub kind: FaultKind,
    /// First faulty row.
    pub start_row: usize,
    /// End row (exclusive).
    pub end_row: usize,
    /// Affected sensors (indices into the run's columns).
    pub sensors: Vec<usize>,
    /// Signed deviation per affected sensor at full effect, in that sensor's σ (same order as
    /// `sensors`; empty for kinds without a size).
    pub directions: Vec<f64>,
    /// Size in σ, `None` for kinds without one.
    pub size_sigma: Option<f64>,
}

impl Fault {
    /// Number of faulty rows.
    pub fn len(&self) -> usize {
        self.end_row - self.start_row
    }

    /// Whether the fault has no rows (never true for a drawn fault).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether row `row` is inside the fault.
    pub fn contains(&self, row: usize) -> bool {
        (self.start_row..self.end_row).contains(&row)
    }

    /// The additive deviation, in σ, of affected sensor number `k` (index into `sensors`) at
    /// row `row` inside the fault (0 for kinds that do not add).
    pub(super) fn added_sigma(&self, k: usize, row: usize) -> f64 {
        let (Some(size), Some(dir)) = (self.size_sigma, self.directions.get(k)) else { return 0.0 };
        let progress = (row + 1 - self.start_row) as f64 / self.len() as f64;
        let shape = match self.kind {
            FaultKind::Wear | FaultKind::Drift => progress,
            FaultKind::Clogging | FaultKind::Fouling | FaultKind::Leak => (3.0 * progress).min(1.0),
            FaultKind::Offset => 1.0,
            _ => 0.0,
        };
        dir * size * shape
    }
}

/// Warm-up rows of a rig run: the larger of a fifth of the run and 30 minutes. No fault
/// starts in the warm-up, and scoring skips it.
pub fn warmup_rows(spec: &RigSpec) -> usize {
    let thirty_min = (30 * 60_000u64).div_ceil(spec.interval_ms) as usize;
    (spec.rows / 5).max(thirty_min)
}

/// The faults of one run: one per equal slot after the warm-up, at a uniform offset in its
/// slot, lasting a log-uniform number of minutes (at least 2 rows, at most half the slot),
/// of a kind drawn uniformly from [`FaultKind::GENERIC`] (weighted) and the rig's mechanisms.
pub(super) fn draw(spec: &RigSpec, rng: &mut SplitMix64) -> Vec<Fault> {
    let warmup = warmup_rows(spec);
    let slot = (spec.rows - warmup) / spec.faults.max(1);
    let lagged: Vec<usize> = (0..spec.sensors.len()).filter(|&j| spec.sensors[j].lag_s.is_some()).collect();
    let n_kinds = FaultKind::GENERIC.len() + spec.mechanisms.len();
    let mut faults = Vec::with_capacity(spec.faults);
    for i in 0..spec.faults {
        let (lo, hi) = spec.fault_minutes;
        let minutes = lo * (hi / lo).powf(rng.uniform());
        let rows = (minutes * 60_000.0 / spec.interval_ms as f64).round() as usize;
        let len = rows.clamp(2, (slot / 2).max(2));
        let start = warmup + i * slot + (rng.uniform() * (slot.saturating_sub(len)) as f64) as usize;
        let pick = (rng.next_u64() % n_kinds as u64) as usize;
        let (kind, sensors, directions) = match FaultKind::GENERIC.get(pick) {
            Some(&kind) => {
                let pool: Vec<usize> = match kind {
                    FaultKind::LagChange if !lagged.is_empty() => lagged.clone(),
                    _ => (0..spec.sensors.len()).collect(),
                };
                let j = pool[(rng.next_u64() % pool.len() as u64) as usize];
                let sign = if rng.uniform() < 0.5 { -1.0 } else { 1.0 };
                (kind, vec![j], vec![sign])
            }
            None => {
                let m = &spec.mechanisms[pick - FaultKind::GENERIC.len()];
                let mut sensors = Vec::new();
                let mut directions = Vec::new();
                for (name, dir) in m.effects {
                    if let Some(j) = spec.sensors.iter().position(|s| s.name == *name) {
                        sensors.push(j);
                        directions.push(*dir);
                    }
                }
                (m.kind, sensors, directions)
            }
        };
        let sizes = kind.sizes();
        let size_sigma = (!sizes.is_empty()).then(|| sizes[(rng.next_u64() % sizes.len() as u64) as usize]);
        let directions = if size_sigma.is_some() { directions } else { Vec::new() };
        faults.push(Fault { kind, start_row: start, end_row: start + len, sensors, directions, size_sigma });
    }
    faults
}
