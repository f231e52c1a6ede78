//! The end-of-run summary.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Ingest→alert latency percentiles, microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest.
    pub max_us: u64,
}

impl LatencySummary {
    /// Percentiles of `h` (µs), or `None` if it is empty.
    pub fn from_histogram(h: &Histogram<u64>) -> Option<Self> {
        (!h.is_empty()).then(|| LatencySummary {
            count: h.len(),
            p50_us: h.value_at_quantile(0.5),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        })
    }
}

/// What a run did.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Workers used.
    pub workers: usize,
    /// Wall-clock time.
    pub elapsed: Duration,
    /// Records read by sources.
    pub records_in: u64,
    /// Events that reached the windows.
    pub processed: u64,
    /// Late events.
    pub late: u64,
    /// Dead-lettered records.
    pub dead_lettered: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Events too far out of order to de-duplicate (passed on).
    pub dedupe_horizon_exceeded: u64,
    /// Windows closed.
    pub windows_closed: u64,
    /// Alerts a sink skipped as already written.
    pub alerts_deduplicated: u64,
    /// (fired, cleared) per rule.
    pub alerts_by_rule: BTreeMap<String, (u64, u64)>,
    /// Ingest→alert latency.
    pub latency: Option<LatencySummary>,
    /// Where dead letters went, if to a file.
    pub dead_letter_file: Option<PathBuf>,
    /// Whether a stop (time limit, error) ended the sources early.
    pub stopped_early: bool,
}

impl Summary {
    /// Records per second of wall-clock time.
    pub fn events_per_sec(&self) -> f64 {
        self.records_in as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Total alerts written (fired + cleared).
    pub fn alerts(&self) -> u64 {
        self.alerts_by_rule.values().map(|(f, c)| f + c).sum()
    }

    /// Whether every record is accounted for: in = processed + late + dead + duplicates.
    pub fn balanced(&self) -> bool {
        self.records_in == self.processed + self.late + self.dead_lettered + self.duplicates
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "── sensorflow run summary ──────────────────────────────")?;
        writeln!(f, "workers              {:>14}", self.workers)?;
        writeln!(f, "elapsed              {:>14.3} s", self.elapsed.as_secs_f64())?;
        writeln!(f, "events in            {:>14}", self.records_in)?;
        writeln!(f, "events/s             {:>14.0}", self.events_per_sec())?;
        writeln!(f, "processed            {:>14}", self.processed)?;
        writeln!(f, "late                 {:>14}", self.late)?;
        let dead_note = match &self.dead_letter_file {
            Some(p) => format!("  → {}", p.display()),
            None if self.dead_lettered > 10 => "  (first 10 on stderr; --dead-letters FILE keeps all)".into(),
            None => String::new(),
        };
        writeln!(f, "dead-lettered        {:>14}{dead_note}", self.dead_lettered)?;
        writeln!(f, "duplicates dropped   {:>14}", self.duplicates)?;
        if self.dedupe_horizon_exceeded > 0 {
            writeln!(f, "beyond dedupe horizon{:>14}", self.dedupe_horizon_exceeded)?;
        }
        writeln!(f, "windows closed       {:>14}", self.windows_closed)?;
        writeln!(f, "alerts               {:>14}", self.alerts())?;
        for (rule, (fired, cleared)) in &self.alerts_by_rule {
            writeln!(f, "  {rule:<24} fired {fired:>7}  cleared {cleared:>7}")?;
        }
        if self.alerts_deduplicated > 0 {
            writeln!(f, "alerts already written {:>12}", self.alerts_deduplicated)?;
        }
        match &self.latency {
            Some(l) => writeln!(
                f,
                "ingest→alert latency  p50 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms  (n={})",
                l.p50_us as f64 / 1e3,
                l.p99_us as f64 / 1e3,
                l.p999_us as f64 / 1e3,
                l.max_us as f64 / 1e3,
                l.count
            )?,
            None => writeln!(f, "ingest→alert latency  (no alerts)")?,
        }
        if self.stopped_early {
            writeln!(f, "(stopped early by the time limit)")?;
        }
        if !self.balanced() {
            writeln!(f, "WARNING: counts do not balance (in ≠ processed + late + dead + duplicates)")?;
        }
        Ok(())
    }
}
