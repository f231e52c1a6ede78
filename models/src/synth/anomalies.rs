//! Injected anomalies: the kinds, one anomaly's span and size, and the process that draws
//! them for a series (Poisson arrivals, never overlapping, durations in wall-clock minutes
//! or in samples).

use serde::{Deserialize, Serialize};

use super::SplitMix64;

/// The kinds of injected anomaly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnomalyKind {
    /// One sample far above normal.
    Spike,
    /// One sample far below normal.
    Dip,
    /// The level jumps and stays shifted for a while.
    LevelShift,
    /// The level ramps away linearly.
    Drift,
    /// The sensor repeats one value.
    StuckAt,
    /// Noise grows several-fold.
    NoiseBurst,
    /// No samples at all.
    Dropout,
}

impl AnomalyKind {
    /// Every kind.
    pub const ALL: [AnomalyKind; 7] = [
        AnomalyKind::Spike,
        AnomalyKind::Dip,
        AnomalyKind::LevelShift,
        AnomalyKind::Drift,
        AnomalyKind::StuckAt,
        AnomalyKind::NoiseBurst,
        AnomalyKind::Dropout,
    ];

    /// Name used in label files.
    pub fn name(self) -> &'static str {
        match self {
            AnomalyKind::Spike => "spike",
            AnomalyKind::Dip => "dip",
            AnomalyKind::LevelShift => "level-shift",
            AnomalyKind::Drift => "drift",
            AnomalyKind::StuckAt => "stuck-at",
            AnomalyKind::NoiseBurst => "noise-burst",
            AnomalyKind::Dropout => "dropout",
        }
    }
}

/// One injected anomaly: kind, time span `[start_ms, end_ms)` and magnitude (in scale units).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    /// Kind.
    pub kind: AnomalyKind,
    /// First affected time, ms.
    pub start_ms: u64,
    /// End (exclusive), ms.
    pub end_ms: u64,
    /// Signed size in units of the profile's scale.
    pub magnitude: f64,
}

/// Settings of a series' anomaly process.
#[derive(Clone, Debug, PartialEq)]
pub struct AnomalyPlan {
    /// Expected anomalies per series-hour of event time.
    pub rate_per_hour: f64,
    /// Kinds to draw from, uniformly.
    pub kinds: Vec<AnomalyKind>,
    /// Magnitude multiplier (1.0 = standard; smaller = subtler anomalies).
    pub severity: f64,
    /// How long anomalies last.
    pub durations: Durations,
}

/// How anomaly durations are drawn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durations {
    /// Minutes of event time, whatever the sample interval (the simulator's fleet: a level
    /// shift of 3–20 minutes is hundreds of samples at one per second).
    #[default]
    WallClock,
    /// Numbers of samples, log-uniformly drawn (level shift 10–1,000, drift 20–500, stuck
    /// sensor 10–300, noise burst 5–200): the same shapes whether a sample is a second or ten
    /// minutes apart, which is what training data for any sensor needs. At a 5-minute
    /// interval wall-clock durations would make every anomaly a blip of one to six samples.
    Samples,
}

impl Default for AnomalyPlan {
    fn default() -> Self {
        AnomalyPlan {
            rate_per_hour: 0.1,
            kinds: AnomalyKind::ALL.to_vec(),
            severity: 1.0,
            durations: Durations::WallClock,
        }
    }
}

impl AnomalyPlan {
    /// Time to the next anomaly, drawn from `rng` (exponential: a Poisson process).
    pub(super) fn gap_ms(&self, rng: &mut SplitMix64) -> u64 {
        if self.rate_per_hour <= 0.0 || self.kinds.is_empty() {
            return u64::MAX / 2;
        }
        let u = rng.uniform().max(1e-12);
        let hours = -u.ln() / self.rate_per_hour;
        (hours * 3_600_000.0).min(1e15) as u64
    }

    /// The anomaly starting at `ts`, drawn from `rng`.
    pub(super) fn draw(&self, rng: &mut SplitMix64, ts: u64, interval_ms: u64) -> Anomaly {
        let kinds = &self.kinds;
        let kind = kinds[(rng.next_u64() % kinds.len() as u64) as usize];
        let sev = self.severity;
        let samples = self.durations == Durations::Samples;
        // `lo..hi` minutes of wall-clock time, or with sample durations `s_lo..s_hi` samples.
        let minutes = |rng: &mut SplitMix64, lo: f64, hi: f64| {
            if samples {
                let (s_lo, s_hi): (f64, f64) = match kind {
                    AnomalyKind::LevelShift => (10.0, 1000.0),
                    AnomalyKind::Drift => (20.0, 500.0),
                    AnomalyKind::StuckAt => (10.0, 300.0),
                    _ => (5.0, 200.0),
                };
                let n: f64 = s_lo * (s_hi / s_lo).powf(rng.uniform());
                (n * interval_ms as f64) as u64
            } else {
                (rng.range(lo, hi) * 60_000.0) as u64
            }
        };
        let (len, magnitude) = match kind {
            AnomalyKind::Spike => (interval_ms, sev * rng.range(6.0, 12.0)),
            AnomalyKind::Dip => (interval_ms, -sev * rng.range(6.0, 12.0)),
            AnomalyKind::LevelShift => {
                let sign = if rng.uniform() < 0.5 { -1.0 } else { 1.0 };
                (minutes(rng, 3.0, 20.0), sign * sev * rng.range(3.0, 6.0))
            }
            AnomalyKind::Drift => (minutes(rng, 5.0, 30.0), sev * rng.range(4.0, 8.0)),
            AnomalyKind::StuckAt => (minutes(rng, 2.0, 15.0), 0.0),
            AnomalyKind::NoiseBurst => (minutes(rng, 1.0, 10.0), 1.0 + sev * rng.range(8.0, 15.0)),
            AnomalyKind::Dropout => (minutes(rng, 1.0, 10.0), 0.0),
        };
        Anomaly { kind, start_ms: ts, end_ms: ts + len.max(interval_ms), magnitude }
    }
}
