//! Per-row scoring for the rig benchmark (issue 14), and its naive baselines
//! (`baselines.rs`).
//!
//! Rows are scored one by one, **without point adjustment**: a fault's rows count as detected
//! only where they are flagged. (Point adjustment, which marks a whole anomalous segment
//! detected once any row of it is flagged, lets a random detector reach a high F1: Kim et
//! al., "Towards a rigorous evaluation of time-series anomaly detection", AAAI 2022.) Fault
//! events are scored separately: an event is detected if any of its rows is flagged, with
//! the delay in rows from its first row to the first flagged one.
//!
//! **The warm-up is excluded**: rows before the run's warm-up end (`skip`) are neither
//! counted as normal nor as anomalous, because detectors learn the rig's normal behaviour
//! from them (and no fault is ever injected there).
//!
//! Edge cases: a ratio whose denominator is zero is 0 (precision with nothing flagged, recall
//! and missed-alarm rate with nothing anomalous, false-alarm rate with nothing normal), and F1
//! is 0 when precision + recall is 0.

mod baselines;
mod files;

pub use files::{flags_from_alerts, flags_from_scores, RowLabels};

pub use baselines::{
    run_baseline, run_detector, score_run, Baseline, BenchmarkRow, BenchmarkTable, ZSCORE_K,
};

/// Labels and predictions that cannot be scored together.
#[derive(Debug, thiserror::Error)]
pub enum RowsError {
    /// The two sequences differ in length. A retry cannot help: the detector must emit one
    /// prediction per row.
    #[error("{labels} labels but {predictions} predictions")]
    LengthMismatch {
        /// Number of labels.
        labels: usize,
        /// Number of predictions.
        predictions: usize,
    },
    /// A labels, alert or score file that does not parse. A retry cannot help: fix the file.
    #[error("{path}: {why}")]
    BadFile {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong, with the line.
        why: String,
    },
    /// A file could not be read. A retry helps if the cause was transient.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A baseline name that does not exist. A retry cannot help: use `zscore` or `all`.
    #[error("unknown baseline {0:?} (expected zscore or all)")]
    UnknownBaseline(String),
}

fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// Confusion counts over scored rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RowCounts {
    /// Anomalous rows flagged.
    pub true_pos: u64,
    /// Normal rows flagged.
    pub false_pos: u64,
    /// Normal rows not flagged.
    pub true_neg: u64,
    /// Anomalous rows not flagged.
    pub false_neg: u64,
}

impl RowCounts {
    /// Counts over rows `skip..` of `labels` (true = anomalous) and `predictions` (true =
    /// flagged).
    pub fn count(labels: &[bool], predictions: &[bool], skip: usize) -> Result<RowCounts, RowsError> {
        check(labels, predictions)?;
        let mut c = RowCounts::default();
        for (&l, &p) in labels.iter().zip(predictions).skip(skip) {
            match (l, p) {
                (true, true) => c.true_pos += 1,
                (false, true) => c.false_pos += 1,
                (false, false) => c.true_neg += 1,
                (true, false) => c.false_neg += 1,
            }
        }
        Ok(c)
    }

    /// Adds another set of counts (pooling runs: micro-averaged rates).
    pub fn add(&mut self, other: &RowCounts) {
        self.true_pos += other.true_pos;
        self.false_pos += other.false_pos;
        self.true_neg += other.true_neg;
        self.false_neg += other.false_neg;
    }

    /// Scored rows.
    pub fn rows(&self) -> u64 {
        self.true_pos + self.false_pos + self.true_neg + self.false_neg
    }

    /// Anomalous scored rows.
    pub fn anomalous(&self) -> u64 {
        self.true_pos + self.false_neg
    }

    /// Normal scored rows.
    pub fn normal(&self) -> u64 {
        self.false_pos + self.true_neg
    }

    /// TP / (TP + FP).
    pub fn precision(&self) -> f64 {
        ratio(self.true_pos, self.true_pos + self.false_pos)
    }

    /// TP / (TP + FN).
    pub fn recall(&self) -> f64 {
        ratio(self.true_pos, self.anomalous())
    }

    /// Harmonic mean of precision and recall.
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }

    /// False-alarm rate: FP / normal rows.
    pub fn false_alarm_rate(&self) -> f64 {
        ratio(self.false_pos, self.normal())
    }

    /// Missed-alarm rate: FN / anomalous rows (1 − recall).
    pub fn missed_rate(&self) -> f64 {
        ratio(self.false_neg, self.anomalous())
    }
}

fn check(labels: &[bool], predictions: &[bool]) -> Result<(), RowsError> {
    if labels.len() != predictions.len() {
        return Err(RowsError::LengthMismatch { labels: labels.len(), predictions: predictions.len() });
    }
    Ok(())
}

/// The labelled events (maximal runs of anomalous rows) in rows `skip..`, as `[start, end)`.
/// Two faults never touch in the rig benchmark, so each run of rows is one fault.
pub fn events(labels: &[bool], skip: usize) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = None;
    for (i, &l) in labels.iter().enumerate().skip(skip) {
        match (l, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                spans.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        spans.push((s, labels.len()));
    }
    spans
}

/// Event detection: how many events, how many had a flagged row, and the delays (rows from
/// an event's first row to its first flagged row) of the detected ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventCounts {
    /// Events.
    pub events: usize,
    /// Events with at least one flagged row.
    pub detected: usize,
    /// Delay of each detected event, rows.
    pub delays: Vec<usize>,
}

impl EventCounts {
    /// Detection of the events `spans` (`[start, end)` rows) by `predictions`.
    pub fn count(spans: &[(usize, usize)], predictions: &[bool]) -> EventCounts {
        let mut c = EventCounts { events: spans.len(), ..EventCounts::default() };
        for &(s, e) in spans {
            let e = e.min(predictions.len());
            if let Some(d) = predictions.get(s..e).and_then(|p| p.iter().position(|&f| f)) {
                c.detected += 1;
                c.delays.push(d);
            }
        }
        c
    }

    /// Adds another set of counts.
    pub fn add(&mut self, other: &EventCounts) {
        self.events += other.events;
        self.detected += other.detected;
        self.delays.extend_from_slice(&other.delays);
    }

    /// Detected / events (0 with no events).
    pub fn rate(&self) -> f64 {
        ratio(self.detected as u64, self.events as u64)
    }

    /// Median delay of the detected events, rows (`None` if none was detected).
    pub fn median_delay(&self) -> Option<f64> {
        let mut d = self.delays.clone();
        d.sort_unstable();
        let n = d.len();
        match n {
            0 => None,
            _ if n % 2 == 1 => Some(d[n / 2] as f64),
            _ => Some((d[n / 2 - 1] + d[n / 2]) as f64 / 2.0),
        }
    }
}
