//! What the control stream carries: rules, device metadata, names and resumed episodes, the
//! contents of a differential collection that changes while the graph runs.

use serde::{Deserialize, Serialize};

use super::rule::Rule;

/// Site and owner of a device, joined into its alerts.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DeviceMeta {
    /// Device name.
    pub device: String,
    /// Where it is.
    pub site: Option<String>,
    /// Who looks after it.
    pub owner: Option<String>,
}

/// A change to what the rule operator knows: the contents of a differential collection.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Control {
    /// A threshold rule.
    Rule(Rule),
    /// Metadata of one device.
    Device(DeviceMeta),
    /// A device name seen by some process (cluster mode: each process learns every name).
    DeviceName(String),
    /// A metric name seen by some process.
    MetricName(String),
    /// An episode an earlier run fired and had not cleared when it stopped (read back from
    /// its alert output). If the same rule fires for the device in a window starting before
    /// `resume_at` (where the earlier run's output ended), that is this episode continuing:
    /// it keeps the earlier key, so its `Cleared` matches the `Fired` already written.
    OpenEpisode {
        /// Device name.
        device: String,
        /// Rule name.
        rule: String,
        /// The episode's key (start of its first window), ms.
        since: u64,
        /// The earlier run's output frontier, ms.
        resume_at: u64,
    },
}
