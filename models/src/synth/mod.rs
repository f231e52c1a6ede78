//! Synthetic sensor signals with labelled anomalies, seeded and reproducible.
//!
//! A series is `level + daily seasonality + mean-reverting random walk + sensor noise`
//! (optionally another cycle length and waveform, and normal bursts: [`Shape`]),
//! sampled at a fixed interval. Anomalies arrive as a Poisson process (rate per series-hour)
//! and never overlap; each is one of [`AnomalyKind::ALL`] with a magnitude in units of the
//! metric's typical scale. The same (seed, series id) always produces the same samples.

mod rng;

pub use rng::SplitMix64;

use serde::{Deserialize, Serialize};

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

/// How a metric behaves: typical level, daily swing, wander and noise.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetricProfile {
    /// Metric name.
    pub name: &'static str,
    /// Mean level across devices.
    pub level: f64,
    /// Spread of per-device levels (uniform ±).
    pub level_spread: f64,
    /// Daily seasonality amplitude.
    pub daily_amplitude: f64,
    /// Random-walk step deviation per sample.
    pub walk_sigma: f64,
    /// Sensor noise deviation.
    pub noise: f64,
    /// Typical scale that anomaly magnitudes multiply.
    pub scale: f64,
    /// Values are clamped at or above this (humidity cannot go negative).
    pub floor: f64,
}

/// The simulator's standard metrics.
pub const PROFILES: [MetricProfile; 3] = [
    MetricProfile {
        name: "temperature",
        level: 21.0,
        level_spread: 3.0,
        daily_amplitude: 3.0,
        walk_sigma: 0.02,
        noise: 0.15,
        scale: 3.0,
        floor: -60.0,
    },
    MetricProfile {
        name: "humidity",
        level: 45.0,
        level_spread: 8.0,
        daily_amplitude: 6.0,
        walk_sigma: 0.05,
        noise: 0.5,
        scale: 5.0,
        floor: 0.0,
    },
    MetricProfile {
        name: "vibration",
        level: 1.0,
        level_spread: 0.3,
        daily_amplitude: 0.1,
        walk_sigma: 0.002,
        noise: 0.05,
        scale: 0.3,
        floor: 0.0,
    },
];

/// The profile called `name`.
pub fn profile(name: &str) -> Option<&'static MetricProfile> {
    PROFILES.iter().find(|p| p.name == name)
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

/// A sample: the value (`None` during a dropout) and the anomaly affecting it, if any.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Value, or `None` when the sensor sent nothing.
    pub value: Option<f64>,
    /// The anomaly active at this time.
    pub anomaly: Option<AnomalyKind>,
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

const DAY_MS: f64 = 86_400_000.0;

/// The waveform of a series' cycle.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Waveform {
    /// A sine wave.
    #[default]
    Sine,
    /// On for `duty` of each cycle, off for the rest (schedules, duty-cycled machines).
    Square {
        /// Fraction of the cycle that is on.
        duty: f64,
    },
    /// A ramp that falls back at the end of each cycle (fill and empty, batch jobs).
    Sawtooth,
}

/// Normal behaviour beyond a sine-wave day: recurring shapes and bursts that real telemetry
/// shows and that are not anomalies. The default is the simulator's plain series.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Shape {
    /// The cycle's waveform.
    pub waveform: Waveform,
    /// Cycle length in samples; `None` for one day of wall-clock time.
    pub period_samples: Option<f64>,
    /// Probability per sample that a normal burst starts (request bursts, traffic).
    pub burst_rate: f64,
    /// Typical burst height in units of the profile's scale (heavy-tailed: Pareto, α = 2).
    pub burst_size: f64,
}

impl Waveform {
    /// The waveform at cycle phase `phase` (radians), in [−1, 1].
    fn at(self, phase: f64) -> f64 {
        let frac = (phase / std::f64::consts::TAU).rem_euclid(1.0);
        match self {
            Waveform::Sine => phase.sin(),
            Waveform::Square { duty } => {
                if frac < duty {
                    1.0
                } else {
                    -1.0
                }
            }
            Waveform::Sawtooth => 2.0 * frac - 1.0,
        }
    }
}

/// One synthetic series, generated sample by sample in time order.
#[derive(Clone, Debug)]
pub struct Series {
    rng: SplitMix64,
    profile: MetricProfile,
    plan: AnomalyPlan,
    level: f64,
    amplitude: f64,
    phase: f64,
    noise: f64,
    walk: f64,
    next_anomaly_ms: u64,
    current: Option<Anomaly>,
    stuck_value: Option<f64>,
    last_value: f64,
    shape: Shape,
    samples: u64,
    burst: f64,
}

impl Series {
    /// Series `series_id` of the generator seeded with `seed`, starting at `start_ms`.
    pub fn new(seed: u64, series_id: u64, profile: MetricProfile, plan: AnomalyPlan, start_ms: u64) -> Self {
        let mut rng = SplitMix64::new(seed ^ series_id.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let level = profile.level + rng.range(-profile.level_spread, profile.level_spread);
        let amplitude = profile.daily_amplitude * rng.range(0.5, 1.5);
        let phase = rng.range(0.0, std::f64::consts::TAU);
        let noise = profile.noise * rng.range(0.7, 1.3);
        let mut s = Series {
            rng,
            profile,
            plan,
            level,
            amplitude,
            phase,
            noise,
            walk: 0.0,
            next_anomaly_ms: 0,
            current: None,
            stuck_value: None,
            last_value: level,
            shape: Shape::default(),
            samples: 0,
            burst: 0.0,
        };
        s.next_anomaly_ms = start_ms + s.gap_ms();
        s
    }

    /// The same series with other normal behaviour.
    pub fn with_shape(mut self, shape: Shape) -> Self {
        self.shape = shape;
        self
    }

    fn gap_ms(&mut self) -> u64 {
        if self.plan.rate_per_hour <= 0.0 || self.plan.kinds.is_empty() {
            return u64::MAX / 2;
        }
        let u = self.rng.uniform().max(1e-12);
        let hours = -u.ln() / self.plan.rate_per_hour;
        (hours * 3_600_000.0).min(1e15) as u64
    }

    /// The anomaly active now, if any.
    pub fn current_anomaly(&self) -> Option<Anomaly> {
        self.current
    }

    /// The sample at `ts` (call with increasing `ts`, one per interval). Returns the sample
    /// and, when an anomaly starts at this sample, the anomaly (for ground-truth labels).
    pub fn sample(&mut self, ts: u64, interval_ms: u64) -> (Sample, Option<Anomaly>) {
        let mut started = None;
        if let Some(a) = self.current {
            if ts >= a.end_ms {
                self.current = None;
                self.stuck_value = None;
                self.next_anomaly_ms = ts + self.gap_ms();
            }
        }
        if self.current.is_none() && ts >= self.next_anomaly_ms {
            let a = self.draw_anomaly(ts, interval_ms);
            self.current = Some(a);
            started = Some(a);
        }
        // The normal signal evolves underneath any anomaly.
        let revert = 0.001;
        self.walk = self.walk * (1.0 - revert) + self.profile.walk_sigma * self.rng.normal();
        let cycles = match self.shape.period_samples {
            Some(period) => self.samples as f64 / period,
            None => ts as f64 / DAY_MS,
        };
        self.samples += 1;
        let daily = self.amplitude * self.shape.waveform.at(cycles * std::f64::consts::TAU + self.phase);
        let mut noise = self.noise * self.rng.normal();
        let mut value = self.level + daily + self.walk;
        if self.shape.burst_rate > 0.0 {
            // A burst jumps up and decays over a few samples.
            self.burst *= 0.5;
            if self.rng.uniform() < self.shape.burst_rate {
                let pareto = 1.0 / self.rng.uniform().max(1e-6).sqrt();
                self.burst += self.shape.burst_size * self.profile.scale * pareto.min(20.0);
            }
            value += self.burst;
        }
        let scale = self.profile.scale;
        let anomaly = self.current.map(|a| a.kind);
        if let Some(a) = self.current {
            match a.kind {
                AnomalyKind::Spike | AnomalyKind::Dip | AnomalyKind::LevelShift => {
                    value += a.magnitude * scale;
                }
                AnomalyKind::Drift => {
                    let progress = (ts - a.start_ms) as f64 / (a.end_ms - a.start_ms).max(1) as f64;
                    value += a.magnitude * scale * progress;
                }
                AnomalyKind::StuckAt => {
                    let v = *self.stuck_value.get_or_insert(self.last_value);
                    return (Sample { value: Some(v), anomaly }, started);
                }
                AnomalyKind::NoiseBurst => noise *= a.magnitude,
                AnomalyKind::Dropout => return (Sample { value: None, anomaly }, started),
            }
        }
        value = (value + noise).max(self.profile.floor);
        self.last_value = value;
        (Sample { value: Some(value), anomaly }, started)
    }

    fn draw_anomaly(&mut self, ts: u64, interval_ms: u64) -> Anomaly {
        let kinds = &self.plan.kinds;
        let kind = kinds[(self.rng.next_u64() % kinds.len() as u64) as usize];
        let sev = self.plan.severity;
        let samples = self.plan.durations == Durations::Samples;
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
            AnomalyKind::Spike => (interval_ms, sev * self.rng.range(6.0, 12.0)),
            AnomalyKind::Dip => (interval_ms, -sev * self.rng.range(6.0, 12.0)),
            AnomalyKind::LevelShift => {
                let sign = if self.rng.uniform() < 0.5 { -1.0 } else { 1.0 };
                (minutes(&mut self.rng, 3.0, 20.0), sign * sev * self.rng.range(3.0, 6.0))
            }
            AnomalyKind::Drift => (minutes(&mut self.rng, 5.0, 30.0), sev * self.rng.range(4.0, 8.0)),
            AnomalyKind::StuckAt => (minutes(&mut self.rng, 2.0, 15.0), 0.0),
            AnomalyKind::NoiseBurst => {
                (minutes(&mut self.rng, 1.0, 10.0), 1.0 + sev * self.rng.range(8.0, 15.0))
            }
            AnomalyKind::Dropout => (minutes(&mut self.rng, 1.0, 10.0), 0.0),
        };
        Anomaly { kind, start_ms: ts, end_ms: ts + len.max(interval_ms), magnitude }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seed: u64, n: u64, plan: AnomalyPlan) -> (Vec<Option<f64>>, Vec<Anomaly>) {
        let mut s = Series::new(seed, 7, PROFILES[0], plan, 0);
        let mut values = Vec::new();
        let mut anomalies = Vec::new();
        for i in 0..n {
            let (sample, started) = s.sample(i * 1000, 1000);
            values.push(sample.value);
            anomalies.extend(started);
        }
        (values, anomalies)
    }

    #[test]
    fn same_seed_same_series_other_seed_differs() {
        let plan = AnomalyPlan { rate_per_hour: 2.0, ..AnomalyPlan::default() };
        let a = run(1, 20_000, plan.clone());
        let b = run(1, 20_000, plan.clone());
        let c = run(2, 20_000, plan);
        assert_eq!(a.0, b.0);
        assert_eq!(a.1, b.1);
        assert_ne!(a.0, c.0);
    }

    #[test]
    fn every_kind_appears_and_leaves_its_mark() {
        let plan = AnomalyPlan { rate_per_hour: 6.0, ..AnomalyPlan::default() };
        let (values, anomalies) = run(3, 200_000, plan);
        for kind in AnomalyKind::ALL {
            let seen: Vec<&Anomaly> = anomalies.iter().filter(|a| a.kind == kind).collect();
            assert!(!seen.is_empty(), "{kind:?} never injected");
            let a = seen[0];
            let at = (a.start_ms / 1000) as usize;
            let end = (a.end_ms / 1000) as usize;
            match kind {
                AnomalyKind::Dropout => assert!(values[at..end].iter().all(Option::is_none)),
                AnomalyKind::StuckAt => {
                    assert!(values[at..end].windows(2).all(|w| w[0] == w[1]), "stuck values vary")
                }
                AnomalyKind::Spike => assert!(values[at].unwrap() > values[at - 1].unwrap() + 10.0),
                AnomalyKind::Dip => assert!(values[at].unwrap() < values[at - 1].unwrap() - 10.0),
                _ => assert!(end > at + 30, "{kind:?} should last minutes"),
            }
        }
        // Anomalies never overlap.
        for w in anomalies.windows(2) {
            assert!(w[0].end_ms <= w[1].start_ms);
        }
    }

    #[test]
    fn sample_durations_do_not_depend_on_the_interval() {
        // At a five-minute interval wall-clock durations make a level shift a blip of at most
        // four samples; sample durations keep it 10–1,000 samples long.
        let interval = 300_000;
        let plan = |durations| AnomalyPlan {
            rate_per_hour: 0.05,
            kinds: vec![AnomalyKind::LevelShift],
            durations,
            ..AnomalyPlan::default()
        };
        for (durations, lo, hi) in [(Durations::WallClock, 1, 4), (Durations::Samples, 10, 1000)] {
            let mut s = Series::new(9, 1, PROFILES[0], plan(durations), 0);
            let mut lengths = Vec::new();
            for i in 0..200_000u64 {
                if let (_, Some(a)) = s.sample(i * interval, interval) {
                    lengths.push((a.end_ms - a.start_ms).div_ceil(interval));
                }
            }
            assert!(lengths.len() >= 20, "{durations:?}: {} shifts", lengths.len());
            assert!(lengths.iter().all(|l| (lo..=hi).contains(l)), "{durations:?}: {lengths:?}");
            if durations == Durations::Samples {
                assert!(lengths.iter().any(|&l| l > 200), "long shifts occur: {lengths:?}");
            }
        }
    }

    #[test]
    fn shapes_give_square_cycles_and_normal_bursts() {
        let quiet = MetricProfile { noise: 0.0, walk_sigma: 0.0, ..PROFILES[0] };
        let plan = AnomalyPlan { rate_per_hour: 0.0, ..AnomalyPlan::default() };
        let square = Shape {
            waveform: Waveform::Square { duty: 0.25 },
            period_samples: Some(100.0),
            ..Shape::default()
        };
        let mut s = Series::new(1, 2, quiet, plan.clone(), 0).with_shape(square);
        let values: Vec<f64> = (0..1000u64).map(|i| s.sample(i * 1000, 1000).0.value.unwrap()).collect();
        let high = values.iter().copied().fold(f64::MIN, f64::max);
        let low = values.iter().copied().fold(f64::MAX, f64::min);
        let on = values.iter().filter(|&&v| (v - high).abs() < 1e-9).count();
        let off = values.iter().filter(|&&v| (v - low).abs() < 1e-9).count();
        assert_eq!(on + off, 1000, "a noiseless square wave has two values");
        assert!((230..=270).contains(&on), "on for a quarter of each cycle: {on}");
        assert!(high - low > 1.0, "{low}..{high}");

        let bursty = Shape { burst_rate: 0.02, burst_size: 1.0, ..Shape::default() };
        let flat = MetricProfile { daily_amplitude: 0.0, ..quiet };
        let mut s = Series::new(1, 2, flat, plan, 0).with_shape(bursty);
        let values: Vec<f64> = (0..20_000u64).map(|i| s.sample(i * 1000, 1000).0.value.unwrap()).collect();
        let base = values.iter().copied().fold(f64::MAX, f64::min);
        // Bursts of at least one scale unit (3.0) start about 400 times; each decays by half a
        // sample, so a few samples per burst stand out.
        let raised = values.iter().filter(|&&v| v > base + 1.5).count();
        assert!((300..=2000).contains(&raised), "{raised} raised samples");
    }

    #[test]
    fn normal_signal_stays_in_a_plausible_band() {
        let plan = AnomalyPlan { rate_per_hour: 0.0, ..AnomalyPlan::default() };
        let (values, anomalies) = run(4, 86_400, plan);
        assert!(anomalies.is_empty());
        let vals: Vec<f64> = values.into_iter().map(|v| v.unwrap()).collect();
        let (min, max) = vals.iter().fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        assert!(min > 5.0 && max < 37.0, "temperature range {min}..{max}");
        assert!(max - min > 2.0, "a day should show seasonality, range {min}..{max}");
    }
}
