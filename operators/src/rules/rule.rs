//! A threshold rule and its parts: the comparison, and an `f64` that can be ordered and hashed.

use serde::{Deserialize, Serialize};

use crate::ops::window::Field;

/// An `f64` with a total order, so rules can live in differential collections.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct TotalF64(pub f64);

impl PartialEq for TotalF64 {
    fn eq(&self, other: &Self) -> bool {
        self.0.total_cmp(&other.0).is_eq()
    }
}
impl Eq for TotalF64 {}
impl PartialOrd for TotalF64 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for TotalF64 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}
impl std::hash::Hash for TotalF64 {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state);
    }
}

/// How a window's number is compared with the threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Comparator {
    /// `>`
    #[serde(rename = ">")]
    Above,
    /// `>=`
    #[serde(rename = ">=")]
    AtLeast,
    /// `<`
    #[serde(rename = "<")]
    Below,
    /// `<=`
    #[serde(rename = "<=")]
    AtMost,
}

impl Comparator {
    /// Whether `v` meets the condition against `threshold`.
    #[inline]
    pub fn holds(self, v: f64, threshold: f64) -> bool {
        match self {
            Comparator::Above => v > threshold,
            Comparator::AtLeast => v >= threshold,
            Comparator::Below => v < threshold,
            Comparator::AtMost => v <= threshold,
        }
    }

    /// Whether an active condition has ended: `v` is back past the threshold by `hysteresis`.
    #[inline]
    pub fn cleared(self, v: f64, threshold: f64, hysteresis: f64) -> bool {
        match self {
            Comparator::Above | Comparator::AtLeast => !self.holds(v, threshold - hysteresis),
            Comparator::Below | Comparator::AtMost => !self.holds(v, threshold + hysteresis),
        }
    }

    /// The operator as written in rules files.
    pub fn symbol(self) -> &'static str {
        match self {
            Comparator::Above => ">",
            Comparator::AtLeast => ">=",
            Comparator::Below => "<",
            Comparator::AtMost => "<=",
        }
    }
}

/// A threshold rule: fires once when `field(window) op value` has held for `min_duration_ms`,
/// clears once when the value is back past `value ∓ hysteresis`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Rule {
    /// Unique name; part of alert keys.
    pub name: String,
    /// Metric name it applies to.
    pub metric: String,
    /// Device name pattern (`*` any run, `?` one character); `None` matches every device.
    pub devices: Option<String>,
    /// Which window number to compare.
    pub field: Field,
    /// Comparison.
    pub op: Comparator,
    /// Threshold.
    pub value: TotalF64,
    /// Clearing band (>= 0).
    pub hysteresis: TotalF64,
    /// How long the condition must hold before the alert fires, ms (0: first window).
    pub min_duration_ms: u64,
    /// Copied into alerts.
    pub severity: String,
    /// Fire as soon as the condition holds instead of at the window's end (only for
    /// conditions that can only become true and stay true as a window fills: `max >`, `min <`,
    /// `count >`, with no minimum duration; tumbling windows). Same alert id either way.
    #[serde(default)]
    pub early: bool,
}

impl Rule {
    /// Whether the condition, once true on part of a window, stays true on the whole window
    /// (so the rule may fire early): `max >`/`>=`, `min <`/`<=`, `count >`/`>=`, no minimum
    /// duration.
    pub fn can_fire_early(&self) -> bool {
        let monotone = matches!(
            (self.field, self.op),
            (Field::Max, Comparator::Above | Comparator::AtLeast)
                | (Field::Min, Comparator::Below | Comparator::AtMost)
                | (Field::Count, Comparator::Above | Comparator::AtLeast)
        );
        monotone && self.min_duration_ms == 0
    }

    /// The condition as alerts show it, e.g. `max > 80`.
    pub(crate) fn condition(&self) -> String {
        format!("{} {} {}", self.field.name(), self.op.symbol(), self.value.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparator_hysteresis() {
        assert!(Comparator::Above.holds(81.0, 80.0));
        assert!(!Comparator::Above.cleared(79.0, 80.0, 2.0), "inside the band stays active");
        assert!(Comparator::Above.cleared(78.0, 80.0, 2.0));
        assert!(Comparator::Below.cleared(12.5, 10.0, 2.0));
        assert!(!Comparator::Below.cleared(11.0, 10.0, 2.0));
    }
}
