//! The end-of-run summary.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Ingest→alert latency percentiles, microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
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

/// A fired alert as (device, metric, episode start, rule or model).
pub type FiredAlert = (std::sync::Arc<str>, std::sync::Arc<str>, u64, std::sync::Arc<str>);

/// How a simulator run's alerts compare with the anomalies it injected.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroundTruth {
    /// Anomalies injected.
    pub anomalies: u64,
    /// Of those, how many some alert caught.
    pub caught: u64,
    /// Per alert source: (alerts fired, alerts that match an injected anomaly).
    pub by_source: BTreeMap<String, (u64, u64)>,
    /// Per anomaly kind: anomalies injected, caught by some alert, and caught per alert source.
    pub by_kind: BTreeMap<String, KindCatch>,
}

/// How the anomalies of one injected kind were caught.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KindCatch {
    /// Anomalies of the kind injected.
    pub injected: u64,
    /// Of those, caught by some alert.
    pub caught: u64,
    /// Of those, caught by each alert source (an anomaly two sources catch counts for both).
    pub by_source: BTreeMap<String, u64>,
}

impl GroundTruth {
    /// Matches fired alerts `(device, metric, episode start, source)` to labels: same device
    /// and metric, episode starting between `slack` before the anomaly and `slack` after it.
    pub fn score(labels: &[crate::connectors::simulator::Label], fired: &[FiredAlert], slack: u64) -> Self {
        let matches = |l: &crate::connectors::simulator::Label, (d, m, t, _): &(_, _, u64, _)| {
            let (d, m): (&std::sync::Arc<str>, &std::sync::Arc<str>) = (d, m);
            **d == *l.device && **m == *l.metric && *t + slack >= l.start_ms && *t <= l.end_ms + slack
        };
        let mut gt = GroundTruth { anomalies: labels.len() as u64, ..Self::default() };
        gt.caught = labels.iter().filter(|l| fired.iter().any(|f| matches(l, f))).count() as u64;
        for l in labels {
            let k = gt.by_kind.entry(l.kind.name().to_string()).or_default();
            k.injected += 1;
            let sources: std::collections::BTreeSet<&str> =
                fired.iter().filter(|f| matches(l, f)).map(|f| f.3.as_ref()).collect();
            k.caught += u64::from(!sources.is_empty());
            for s in sources {
                *k.by_source.entry(s.to_string()).or_default() += 1;
            }
        }
        for f in fired {
            let e = gt.by_source.entry(f.3.to_string()).or_default();
            e.0 += 1;
            if labels.iter().any(|l| matches(l, f)) {
                e.1 += 1;
            }
        }
        gt
    }
}

/// What a run did.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Workers used (per process).
    pub workers: usize,
    /// Processes of the timely cluster the run was part of (1: not a cluster).
    pub processes: usize,
    /// Wall-clock time from the first worker's start (in a cluster, once the processes are
    /// connected) to the end.
    pub elapsed: Duration,
    /// Records read by sources.
    pub records_in: u64,
    /// Events that reached the windows.
    pub processed: u64,
    /// Late events.
    pub late: u64,
    /// Dead-lettered records.
    pub dead_lettered: u64,
    /// Of those, events the clock guard rejected, by device.
    pub clock_rejected: sensorflow_operators::ClockRejections,
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
    /// Paced simulator runs: from the moment the event that closes an alert's window was due
    /// (its scheduled emission) to the alert being written; alerts of the last windows, which
    /// the end of the input closes, are not counted.
    pub due_latency: Option<LatencySummary>,
    /// Where dead letters went, if to a file.
    pub dead_letter_file: Option<PathBuf>,
    /// Whether a stop (time limit, error) ended the sources early.
    pub stopped_early: bool,
    /// Alerts against the simulator's injected anomalies (simulator runs only).
    pub ground_truth: Option<GroundTruth>,
    /// Times a source partition was held back by flow control (the graph was behind it).
    pub held_back: u64,
    /// Seconds partitions spent held back, summed over partitions.
    pub held_back_secs: f64,
    /// Per-series state dropped after its idle time.
    pub evicted_series: u64,
    /// Per-device state dropped after its idle time.
    pub evicted_devices: u64,
    /// Device models made, by name (a learned card's, or `statistical`).
    pub device_models: BTreeMap<String, u64>,
    /// Device rows the device models scored (warm-up rows included).
    pub device_rows_scored: u64,
    /// Windows the per-series anomaly model scored.
    pub windows_scored: u64,
    /// The process's peak resident memory (VmHWM) when the run ended, bytes; `None` where
    /// the system does not say (it covers the whole process, earlier runs in it included).
    pub peak_rss_bytes: Option<u64>,
}

/// The process's peak resident memory so far (Linux `VmHWM`), bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
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
        if self.records_in > 0 && self.late * 100 > self.records_in {
            writeln!(
                f,
                "  {:.1} % of events were late (behind their partition's newest minus the lateness): \
                 raise --lateness to keep events up to that far behind, or, for a file ordered per \
                 device (recordings of several devices one after another), judge each device by its \
                 own progress with --event-time device (--late-events FILE shows which were late)",
                100.0 * self.late as f64 / self.records_in as f64
            )?;
        }
        let dead_note = match &self.dead_letter_file {
            Some(p) => format!("  → {}", p.display()),
            None if self.dead_lettered > 10 => "  (first 10 on stderr; --dead-letters FILE keeps all)".into(),
            None => String::new(),
        };
        writeln!(f, "dead-lettered        {:>14}{dead_note}", self.dead_lettered)?;
        let clock = &self.clock_rejected;
        if !clock.named.is_empty() {
            let total = clock.named.values().sum::<u64>() + clock.others;
            let mut worst: Vec<(&String, &u64)> = clock.named.iter().collect();
            worst.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let shown: Vec<String> = worst.iter().take(5).map(|(d, n)| format!("{d} {n}")).collect();
            let more = clock.named.len().saturating_sub(5);
            let more = match (more, clock.others) {
                (0, 0) => String::new(),
                (m, 0) => format!(", {m} more devices"),
                (m, o) => format!(", {m} more devices, {o} of devices not named"),
            };
            writeln!(f, "  timestamp out of range {total:>10}  ({}{more}; see /metrics)", shown.join(", "))?;
        }
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
        if let Some(l) = &self.due_latency {
            writeln!(
                f,
                "due→alert latency     p50 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms  (n={}; from the \
                 scheduled emission of the event that closes the window)",
                l.p50_us as f64 / 1e3,
                l.p99_us as f64 / 1e3,
                l.p999_us as f64 / 1e3,
                l.max_us as f64 / 1e3,
                l.count
            )?;
        }
        if let Some(gt) = &self.ground_truth {
            writeln!(f, "injected anomalies   {:>14}  caught by some alert: {}", gt.anomalies, gt.caught)?;
            for (source, (fired, matched)) in &gt.by_source {
                writeln!(
                    f,
                    "  {source:<24} {matched:>7} of {fired:>7} fired alerts match an injected anomaly"
                )?;
            }
            for (kind, k) in &gt.by_kind {
                let by: Vec<String> = k.by_source.iter().map(|(s, n)| format!("{s} {n}")).collect();
                writeln!(
                    f,
                    "  {:<24} {:>7} of {:>7} injected caught{}",
                    format!("kind {kind}"),
                    k.caught,
                    k.injected,
                    if by.is_empty() { String::new() } else { format!(" (by {})", by.join(", ")) }
                )?;
            }
        }
        if !self.device_models.is_empty() {
            let made: Vec<String> = self.device_models.iter().map(|(m, n)| format!("{m} {n}")).collect();
            writeln!(
                f,
                "device models        {:>14}  rows scored by {}",
                self.device_rows_scored,
                made.join(", ")
            )?;
        }
        if let Some(bytes) = self.peak_rss_bytes {
            writeln!(f, "peak memory (VmHWM)  {:>11.1} MB", bytes as f64 / 1e6)?;
        }
        if self.evicted_series + self.evicted_devices > 0 {
            writeln!(
                f,
                "idle state dropped   {:>14}  series, {} devices (--state-idle)",
                self.evicted_series, self.evicted_devices
            )?;
        }
        if self.held_back > 0 {
            writeln!(
                f,
                "sources held back    {:>14}  times, {:.3} s in all (flow control: --max-in-flight)",
                self.held_back, self.held_back_secs
            )?;
        }
        if self.stopped_early {
            writeln!(f, "(stopped early by the time limit)")?;
        }
        if self.processes > 1 {
            // Events read in one process are de-duplicated and windowed in another.
            writeln!(
                f,
                "(process of a {}-process cluster: events read here are processed where their device \
                 is; `sensorflow cluster` prints the counts summed over the processes, which balance)",
                self.processes
            )?;
        } else if !self.balanced() {
            writeln!(f, "WARNING: counts do not balance (in ≠ processed + late + dead + duplicates)")?;
        }
        Ok(())
    }
}

/// The counts of a run that add up over the processes of a cluster, as JSON (`run
/// --counts-json FILE`); `sensorflow cluster` sums its processes' counts into one that balances.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    /// Processes summed.
    pub processes: usize,
    /// Workers per process.
    pub workers: usize,
    /// The longest process's time from its first worker's start, seconds.
    pub elapsed_secs: f64,
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
    /// Events too far out of order to de-duplicate.
    pub dedupe_horizon_exceeded: u64,
    /// Windows closed.
    pub windows_closed: u64,
    /// Windows the per-series model scored.
    pub windows_scored: u64,
    /// (fired, cleared) per rule or model.
    pub alerts_by_rule: BTreeMap<String, (u64, u64)>,
}

impl Summary {
    /// This run's [`Counts`].
    pub fn counts(&self) -> Counts {
        Counts {
            processes: 1,
            workers: self.workers,
            elapsed_secs: self.elapsed.as_secs_f64(),
            records_in: self.records_in,
            processed: self.processed,
            late: self.late,
            dead_lettered: self.dead_lettered,
            duplicates: self.duplicates,
            dedupe_horizon_exceeded: self.dedupe_horizon_exceeded,
            windows_closed: self.windows_closed,
            windows_scored: self.windows_scored,
            alerts_by_rule: self.alerts_by_rule.clone(),
        }
    }
}

impl Counts {
    /// The counts of several processes of one run, summed (time: the longest).
    pub fn sum(parts: &[Counts]) -> Counts {
        let mut all = Counts { workers: parts.first().map_or(0, |p| p.workers), ..Counts::default() };
        for p in parts {
            all.processes += p.processes;
            all.elapsed_secs = all.elapsed_secs.max(p.elapsed_secs);
            all.records_in += p.records_in;
            all.processed += p.processed;
            all.late += p.late;
            all.dead_lettered += p.dead_lettered;
            all.duplicates += p.duplicates;
            all.dedupe_horizon_exceeded += p.dedupe_horizon_exceeded;
            all.windows_closed += p.windows_closed;
            all.windows_scored += p.windows_scored;
            for (rule, (f, c)) in &p.alerts_by_rule {
                let e = all.alerts_by_rule.entry(rule.clone()).or_default();
                e.0 += f;
                e.1 += c;
            }
        }
        all
    }

    /// Whether every record is accounted for: in = processed + late + dead + duplicates.
    pub fn balanced(&self) -> bool {
        self.records_in == self.processed + self.late + self.dead_lettered + self.duplicates
    }

    /// Records read per second of the longest process's time.
    pub fn events_per_sec(&self) -> f64 {
        self.records_in as f64 / self.elapsed_secs.max(1e-9)
    }

    /// Alerts fired, over every rule and model.
    pub fn fired(&self) -> u64 {
        self.alerts_by_rule.values().map(|(f, _)| f).sum()
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "── sensorflow cluster summary ──────────────────────────")?;
        writeln!(f, "processes × workers  {:>14}", format!("{} × {}", self.processes, self.workers))?;
        writeln!(
            f,
            "elapsed              {:>14.3} s  (the longest process, from its first worker's start)",
            self.elapsed_secs
        )?;
        writeln!(f, "events in            {:>14}", self.records_in)?;
        writeln!(f, "events/s             {:>14.0}", self.events_per_sec())?;
        writeln!(f, "processed            {:>14}", self.processed)?;
        writeln!(f, "late                 {:>14}", self.late)?;
        writeln!(f, "dead-lettered        {:>14}", self.dead_lettered)?;
        writeln!(f, "duplicates dropped   {:>14}", self.duplicates)?;
        writeln!(f, "windows closed       {:>14}", self.windows_closed)?;
        for (rule, (fired, cleared)) in &self.alerts_by_rule {
            writeln!(f, "alerts {rule:<24} {fired:>8} fired {cleared:>8} cleared")?;
        }
        if self.balanced() {
            writeln!(f, "counts balance (in = processed + late + dead + duplicates)")?;
        } else {
            writeln!(f, "WARNING: counts do not balance (in ≠ processed + late + dead + duplicates)")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::connectors::simulator::Label;
    use sensorflow_models::synth::AnomalyKind;

    #[test]
    fn ground_truth_matches_on_device_metric_and_time() {
        let label = |device: &str, start_ms, end_ms| Label {
            device: device.into(),
            metric: "t".into(),
            kind: AnomalyKind::Spike,
            start_ms,
            end_ms,
        };
        let labels = vec![label("a", 100_000, 101_000), label("b", 500_000, 600_000)];
        let fired = |d: &str, m: &str, t: u64, s: &str| (Arc::from(d), Arc::from(m), t, Arc::from(s));
        let alerts = vec![
            fired("a", "t", 95_000, "r"),  // just before, within slack: a match
            fired("a", "t", 300_000, "r"), // far from any anomaly of a
            fired("b", "x", 550_000, "m"), // right time, wrong metric
        ];
        let gt = GroundTruth::score(&labels, &alerts, 10_000);
        assert_eq!((gt.anomalies, gt.caught), (2, 1));
        assert_eq!(gt.by_source["r"], (2, 1));
        assert_eq!(gt.by_source["m"], (1, 0));
        let spikes = &gt.by_kind["spike"];
        assert_eq!((spikes.injected, spikes.caught), (2, 1));
        assert_eq!(spikes.by_source.get("r"), Some(&1));
        assert_eq!(spikes.by_source.get("m"), None);
    }
}
