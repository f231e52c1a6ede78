//! Normal signals: metric profiles (level, daily swing, wander, noise), the shapes beyond a
//! sine-wave day (other cycle lengths, square and sawtooth waveforms, normal bursts), and
//! [`Series`], which generates one series sample by sample with its anomalies.

use super::{Anomaly, AnomalyKind, AnomalyPlan, SplitMix64};

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

/// A sample: the value (`None` during a dropout) and the anomaly affecting it, if any.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Value, or `None` when the sensor sent nothing.
    pub value: Option<f64>,
    /// The anomaly active at this time.
    pub anomaly: Option<AnomalyKind>,
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
        self.plan.gap_ms(&mut self.rng)
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
            let a = self.plan.draw(&mut self.rng, ts, interval_ms);
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
}
