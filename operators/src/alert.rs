//! Alerts: what rules and models say, keyed so a replay reproduces the same keys.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::event::{DeviceId, MetricId};

/// Whether an alert starts or ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertKind {
    /// The condition started to hold (for long enough).
    Fired,
    /// The condition stopped holding (past the hysteresis band), or its rule was removed.
    Cleared,
}

/// An alert's identity: (device, rule or model, window start where the episode began).
/// The same input always produces the same keys, so sinks can de-duplicate replays.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AlertKey {
    /// Device.
    pub device: DeviceId,
    /// Rule or model name.
    pub source: Arc<str>,
    /// Start of the first window of the episode, ms.
    pub window_start: u64,
}

/// One alert transition, with names and device metadata resolved. Strings are shared
/// (`Arc<str>`): making an alert copies no text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Identity of the episode.
    pub key: AlertKey,
    /// Fired or cleared.
    pub kind: AlertKind,
    /// Device name.
    pub device: Arc<str>,
    /// Metric.
    pub metric_id: MetricId,
    /// Metric name.
    pub metric: Arc<str>,
    /// The number the rule looked at (or the model's score).
    pub value: f64,
    /// The rule's threshold.
    pub threshold: f64,
    /// Human-readable condition, e.g. `max > 80`.
    pub condition: Arc<str>,
    /// Start of the window that caused this transition, ms.
    pub window_start: u64,
    /// End of that window, ms.
    pub window_end: u64,
    /// Severity from the rule.
    pub severity: Arc<str>,
    /// Device site, from metadata.
    pub site: Option<Arc<str>>,
    /// Device owner, from metadata.
    pub owner: Option<Arc<str>>,
    /// Set when a rule with `early = true` fired before its window ended: the event time of
    /// the reading that made the condition true. The alert is the one the window's end would
    /// have made (same id); `value` is what the window held at that reading.
    #[serde(default)]
    pub early_at: Option<u64>,
}

impl Alert {
    /// The key as one string: `device/source/metric/window_start/kind`; unique per
    /// transition. The metric is part of it because one model watches every metric of a
    /// device: two of them can start an episode at the same instant (a device whose sensors
    /// all stick at once).
    pub fn id(&self) -> String {
        let kind = match self.kind {
            AlertKind::Fired => "fired",
            AlertKind::Cleared => "cleared",
        };
        format!("{}/{}/{}/{}/{}", self.device, self.key.source, self.metric, self.key.window_start, kind)
    }
}
