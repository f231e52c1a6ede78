//! The built-in device simulator: N devices, a few metrics each, realistic signals with
//! labelled anomalies (from `sensorflow_models::synth`), as fast as possible or paced.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sensorflow_models::synth::{profile, AnomalyKind, AnomalyPlan, Series};
use sensorflow_operators::{
    lock, DeviceId, Dictionary, Event, MetricId, PartitionReader, Poll, SourceBatch, SourceError,
};
use serde::{Deserialize, Serialize};

use super::ConnectorError;

/// What to simulate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// Seed; the same seed gives the same data.
    pub seed: u64,
    /// Number of devices (`dev-000000` …).
    pub devices: u64,
    /// Metric names; each must be a known profile (temperature, humidity, vibration).
    pub metrics: Vec<String>,
    /// Sample interval per device and metric, ms of event time.
    pub interval_ms: u64,
    /// Event time of the first sample, ms since the epoch.
    pub start_ms: u64,
    /// Event-time span to simulate, ms.
    pub span_ms: u64,
    /// Expected anomalies per series-hour.
    pub anomaly_rate_per_hour: f64,
    /// Pace in real time times this factor (`None`: as fast as possible).
    pub realtime_speed: Option<f64>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 42,
            devices: 1000,
            metrics: vec!["temperature".into(), "humidity".into(), "vibration".into()],
            interval_ms: 1000,
            start_ms: 1_704_067_200_000, // 2024-01-01T00:00:00Z
            span_ms: 10 * 60 * 1000,
            anomaly_rate_per_hour: 0.1,
            realtime_speed: None,
        }
    }
}

impl SimConfig {
    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        if self.devices == 0 || self.metrics.is_empty() || self.interval_ms == 0 {
            return Err(ConnectorError::Config(
                "simulator needs devices, metrics and an interval > 0".into(),
            ));
        }
        for m in &self.metrics {
            if profile(m).is_none() {
                return Err(ConnectorError::Config(format!(
                    "simulator metric {m:?} is unknown (known: temperature, humidity, vibration)"
                )));
            }
        }
        if let Some(s) = self.realtime_speed {
            if !(s.is_finite() && s > 0.0) {
                return Err(ConnectorError::Config(format!("realtime speed must be positive, got {s}")));
            }
        }
        if !(self.anomaly_rate_per_hour.is_finite() && self.anomaly_rate_per_hour >= 0.0) {
            return Err(ConnectorError::Config("anomaly rate must be >= 0".into()));
        }
        Ok(())
    }

    /// Name of device `i`.
    pub fn device_name(i: u64) -> String {
        format!("dev-{i:06}")
    }
}

/// Ground truth: one injected anomaly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Label {
    /// Device name.
    pub device: String,
    /// Metric name.
    pub metric: String,
    /// Kind.
    pub kind: AnomalyKind,
    /// First affected event time, ms.
    pub start_ms: u64,
    /// End (exclusive), ms.
    pub end_ms: u64,
}

/// Labels collected by simulator readers of one process.
pub type Labels = Arc<Mutex<Vec<Label>>>;

struct SimDevice {
    name: String,
    id: DeviceId,
    seq: u64,
    series: Vec<(MetricId, usize, Series)>,
}

/// Simulates the devices `index, index + peers, …` in event-time order.
pub struct SimReader {
    config: SimConfig,
    devices: Vec<SimDevice>,
    metric_names: Vec<String>,
    next_ts: u64,
    end_ts: u64,
    remaining: u64,
    started: Option<Instant>,
    labels: Labels,
}

impl std::fmt::Debug for SimReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimReader")
            .field("devices", &self.devices.len())
            .field("next_ts", &self.next_ts)
            .finish()
    }
}

impl SimReader {
    /// The reader for worker `index` of `peers`; stops after `max_events` events of its own.
    pub fn new(
        config: &SimConfig,
        index: usize,
        peers: usize,
        max_events: u64,
        dict: &Dictionary,
        labels: Labels,
    ) -> Self {
        let plan = AnomalyPlan { rate_per_hour: config.anomaly_rate_per_hour, ..AnomalyPlan::default() };
        let metrics: Vec<(MetricId, usize)> =
            config.metrics.iter().enumerate().map(|(i, m)| (dict.metric(m), i)).collect();
        let devices = (0..config.devices)
            .filter(|d| (*d as usize) % peers == index)
            .map(|d| {
                let name = SimConfig::device_name(d);
                let series = metrics
                    .iter()
                    .filter_map(|&(mid, mi)| {
                        let p = *profile(&config.metrics[mi])?;
                        Some((
                            mid,
                            mi,
                            Series::new(config.seed, d * 64 + mi as u64, p, plan.clone(), config.start_ms),
                        ))
                    })
                    .collect();
                SimDevice { id: dict.device(&name), name, seq: 0, series }
            })
            .collect();
        SimReader {
            config: config.clone(),
            devices,
            metric_names: config.metrics.clone(),
            next_ts: config.start_ms,
            end_ts: config.start_ms.saturating_add(config.span_ms),
            remaining: max_events,
            started: None,
            labels,
        }
    }
}

impl PartitionReader for SimReader {
    fn poll(&mut self, out: &mut SourceBatch) -> Result<Poll, SourceError> {
        let started = *self.started.get_or_insert_with(Instant::now);
        let mut new_labels = Vec::new();
        while out.events.len() < 16_384 {
            if self.next_ts >= self.end_ts || self.remaining == 0 || self.devices.is_empty() {
                self.flush_labels(&mut new_labels);
                return Ok(if out.events.is_empty() { Poll::Done } else { Poll::Ready });
            }
            if let Some(speed) = self.config.realtime_speed {
                let due =
                    Duration::from_secs_f64((self.next_ts - self.config.start_ms) as f64 / 1000.0 / speed);
                if started.elapsed() < due {
                    break;
                }
            }
            let ts = self.next_ts;
            let before = out.events.len();
            for dev in &mut self.devices {
                for (metric, mi, series) in &mut dev.series {
                    let (sample, anomaly) = series.sample(ts, self.config.interval_ms);
                    if let Some(a) = anomaly {
                        new_labels.push(Label {
                            device: dev.name.clone(),
                            metric: self.metric_names[*mi].clone(),
                            kind: a.kind,
                            start_ms: a.start_ms,
                            end_ms: a.end_ms,
                        });
                    }
                    if let Some(value) = sample.value {
                        out.events.push(Event { device: dev.id, metric: *metric, ts, value, seq: dev.seq });
                        dev.seq += 1;
                    }
                }
            }
            let made = (out.events.len() - before) as u64;
            if made > self.remaining {
                out.events.truncate(before + self.remaining as usize);
            }
            self.remaining = self.remaining.saturating_sub(made);
            self.next_ts += self.config.interval_ms;
        }
        self.flush_labels(&mut new_labels);
        Ok(if out.events.is_empty() { Poll::Pending } else { Poll::Ready })
    }

    fn next_due(&self) -> Option<Instant> {
        let (speed, started) = (self.config.realtime_speed?, self.started?);
        if self.next_ts >= self.end_ts || self.remaining == 0 {
            return None;
        }
        let offset = (self.next_ts - self.config.start_ms) as f64 / 1000.0 / speed;
        Some(started + Duration::from_secs_f64(offset))
    }
}

impl SimReader {
    fn flush_labels(&self, new: &mut Vec<Label>) {
        if !new.is_empty() {
            lock(&self.labels).append(new);
        }
    }
}
