//! What every parser shares: turning parsed fields into an [`Event`] (names interned,
//! values and times checked against the [`Limits`]), and the reasons records are rejected.
//! The text formats are in `connectors::text` (`json`, `csv`); Kafka and MQTT payloads are
//! JSON lines too. Every failure is a reason string for a dead letter, never a panic.

use std::borrow::Cow;

use sensorflow_operators::{DeviceId, Event, Interner, MetricId, Names};

use crate::timefmt::{parse_datetime, MAX_TS_MS};

/// Why a record was rejected.
pub type Reject = Cow<'static, str>;

/// Limits every parsed event is checked against.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest accepted |value|; beyond it the record is dead-lettered as out of range.
    pub max_abs_value: f64,
    /// Longest accepted device or metric name, bytes.
    pub max_name_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_abs_value: 1e12, max_name_len: 256 }
    }
}

/// Interns names and validates fields; shared by every text format.
#[derive(Debug)]
pub struct EventBuilder {
    devices: Interner,
    metrics: Interner,
    limits: Limits,
}

/// A builder with dictionaries of its own and the default limits (for parsing outside a run).
impl Default for EventBuilder {
    fn default() -> Self {
        EventBuilder::new(Names::default(), Names::default(), Limits::default())
    }
}

impl EventBuilder {
    /// A builder registering names in `devices` and `metrics`.
    pub fn new(devices: Names, metrics: Names, limits: Limits) -> Self {
        EventBuilder { devices: Interner::new(devices), metrics: Interner::new(metrics), limits }
    }

    /// Validates and builds an event.
    #[inline]
    pub fn build(
        &mut self,
        device: &[u8],
        metric: &[u8],
        ts: u64,
        value: f64,
        seq: u64,
    ) -> Result<Event, Reject> {
        if device.is_empty() || device.len() > self.limits.max_name_len {
            return Err(Cow::Borrowed("device name is empty or longer than 256 bytes"));
        }
        if metric.is_empty() || metric.len() > self.limits.max_name_len {
            return Err(Cow::Borrowed("metric name is empty or longer than 256 bytes"));
        }
        if !value.is_finite() {
            return Err(Cow::Borrowed("value is not a finite number"));
        }
        if value.abs() > self.limits.max_abs_value {
            return Err(Cow::Owned(format!(
                "value {value:e} is beyond the limit ±{:e}",
                self.limits.max_abs_value
            )));
        }
        if ts > MAX_TS_MS {
            return Err(Cow::Borrowed("timestamp is beyond year 9999 (expected epoch milliseconds)"));
        }
        let utf8 = |_| Cow::Borrowed("name is not valid UTF-8");
        let device = DeviceId(self.devices.intern(device).map_err(utf8)?);
        let metric = MetricId(self.metrics.intern(metric).map_err(utf8)?);
        Ok(Event { device, metric, ts, value, seq })
    }

    /// Name collisions seen so far.
    pub fn collisions(&self) -> u64 {
        self.devices.collisions() + self.metrics.collisions()
    }
}

/// Parses an event-time field: epoch ms digits or an RFC 3339 / `YYYY-MM-DD HH:MM:SS` date.
pub fn parse_ts_text(s: &str) -> Result<u64, Reject> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()) {
        return s.parse().map_err(|_| Cow::Owned(format!("ts {s:?} does not fit in 64 bits")));
    }
    parse_datetime(s).ok_or_else(|| Cow::Owned(format!("ts {s:?} is neither epoch ms nor RFC 3339")))
}
