//! What a running pipeline shows the outside world while it runs: the live state behind
//! `/metrics`, `/alerts`, `/api/*` and the dashboard (see [`crate::observe::http`]).
//!
//! The dataflow only ever appends here under short locks taken once per batch (alerts, window
//! aggregates) or bumps atomics; everything a reader wants is computed on the reader's side.
//! Nothing here blocks on a reader, so a slow or stuck HTTP client cannot stall the workers.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use sensorflow_operators::{lock, Alert, AlertKind, Counters, LogHistogram, WindowAgg};

use crate::sinks::alert_json;

/// How many alerts `/alerts` keeps for late readers and reconnecting SSE clients.
pub const ALERT_LOG_CAPACITY: usize = 100_000;
/// Points kept per series for the dashboard's sparklines.
pub const SPARK_POINTS: usize = 60;
/// Series with sparkline history (beyond this, only series that have alerted are kept).
pub const SPARK_SERIES: usize = 20_000;
/// One-second samples of the run kept for the dashboard's charts.
pub const HISTORY: usize = 600;

/// The model a run scores with.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ModelInfo {
    /// Model name (`student-int8`, …), empty when the run has no model.
    pub name: String,
    /// A content hash of the model card and weights.
    pub version: String,
    /// Times the model file changed and was reloaded.
    pub reloads: u64,
}

/// The live state of one run.
#[derive(Debug)]
pub struct Telemetry {
    /// The pipeline's counters.
    pub counters: Arc<Counters>,
    /// The source kind (`simulator`, `kafka`, …).
    pub source: String,
    /// Workers in this process.
    pub workers: usize,
    /// This process's index in its cluster.
    pub process: usize,
    /// Wall-clock start, ms since the epoch.
    pub started_ms: u64,
    started: Instant,
    /// Ingest→alert latency (µs): from the moment the watermark passed the alert's window
    /// end to the moment the sink wrote the alert.
    pub latency: LogHistogram,
    /// Alerts written, by (rule or model, fired/cleared).
    by_source: Mutex<BTreeMap<(Arc<str>, &'static str), u64>>,
    /// The model in use.
    pub model: Mutex<ModelInfo>,
    /// Recent alerts.
    pub alerts: AlertLog,
    /// Recent window means per series, for sparklines.
    series: Mutex<Series>,
    /// Once-a-second samples.
    history: Mutex<VecDeque<Sample>>,
    /// Set when the dataflow has finished (SSE streams then end after the last alert).
    finished: AtomicBool,
}

/// Recent alerts with sequence numbers, and a signal for waiting readers.
#[derive(Debug)]
pub struct AlertLog {
    entries: Mutex<VecDeque<(u64, Arc<str>)>>,
    next: AtomicU64,
    changed: tokio::sync::watch::Sender<u64>,
}

impl Default for AlertLog {
    fn default() -> Self {
        AlertLog {
            entries: Mutex::default(),
            next: AtomicU64::new(0),
            changed: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl AlertLog {
    /// Appends alert lines; they get consecutive sequence numbers starting at 1.
    pub fn extend(&self, lines: impl IntoIterator<Item = Arc<str>>) {
        let mut entries = lock(&self.entries);
        let mut n = self.next.load(Ordering::Relaxed);
        for line in lines {
            n += 1;
            entries.push_back((n, line));
        }
        while entries.len() > ALERT_LOG_CAPACITY {
            entries.pop_front();
        }
        self.next.store(n, Ordering::Relaxed);
        drop(entries);
        self.changed.send_replace(n);
    }

    /// The newest sequence number (0 before the first alert).
    pub fn last_seq(&self) -> u64 {
        self.next.load(Ordering::Relaxed)
    }

    /// Up to `limit` alerts after sequence number `after`, oldest first, and whether some
    /// alerts after `after` have already been dropped from the log (the reader fell behind).
    pub fn after(&self, after: u64, limit: usize) -> (Vec<(u64, Arc<str>)>, bool) {
        let entries = lock(&self.entries);
        let first = entries.front().map_or(after + 1, |e| e.0);
        let skip = (after + 1).saturating_sub(first) as usize;
        let gap = first > after + 1;
        (entries.iter().skip(skip).take(limit).cloned().collect(), gap)
    }

    /// The newest `limit` alerts, oldest first.
    pub fn latest(&self, limit: usize) -> Vec<(u64, Arc<str>)> {
        let entries = lock(&self.entries);
        entries.iter().skip(entries.len().saturating_sub(limit)).cloned().collect()
    }

    /// A receiver that changes whenever alerts are appended (or the run finishes).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

/// One series' recent window means.
#[derive(Debug)]
struct SeriesPoints {
    points: VecDeque<(u64, f64)>,
}

#[derive(Debug, Default)]
struct Series {
    points: HashMap<(u64, u64), SeriesPoints>,
    /// Series that alerted, newest last, with their names and whether the episode is open.
    alerted: VecDeque<AlertedSeries>,
}

#[derive(Clone, Debug)]
struct AlertedSeries {
    key: (u64, u64),
    device: Arc<str>,
    metric: Arc<str>,
    site: Option<Arc<str>>,
    open: bool,
    last_alert_ms: u64,
}

/// One once-a-second sample.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Sample {
    /// Wall-clock time, ms since the epoch.
    pub t: u64,
    /// Records read per second over the last interval.
    pub events_per_sec: f64,
    /// Alerts written per second over the last interval.
    pub alerts_per_sec: f64,
    /// Ingest→alert p50 and p99 over the last interval (µs, bucket upper bounds), if any alert.
    pub p50_us: Option<u64>,
    /// See `p50_us`.
    pub p99_us: Option<u64>,
    /// Records read so far.
    pub records_in: u64,
}

/// What the sampler remembers between samples.
#[derive(Debug)]
pub struct Sampler {
    at: Instant,
    records: u64,
    alerts: u64,
    buckets: Vec<(f64, u64)>,
}

fn wall_ms() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Telemetry {
    /// Fresh state for a run.
    pub fn new(counters: Arc<Counters>, source: String, workers: usize, process: usize) -> Arc<Self> {
        Arc::new(Telemetry {
            counters,
            source,
            workers,
            process,
            started_ms: wall_ms(),
            started: Instant::now(),
            latency: LogHistogram::default(),
            by_source: Mutex::default(),
            model: Mutex::default(),
            alerts: AlertLog::default(),
            series: Mutex::default(),
            history: Mutex::default(),
            finished: AtomicBool::new(false),
        })
    }

    /// Records alerts the sink has written (one lock per batch).
    pub fn alerts_written(&self, alerts: &[&Alert]) {
        if alerts.is_empty() {
            return;
        }
        {
            let mut by = lock(&self.by_source);
            for a in alerts {
                let kind = match a.kind {
                    AlertKind::Fired => "fired",
                    AlertKind::Cleared => "cleared",
                };
                *by.entry((a.key.source.clone(), kind)).or_default() += 1;
            }
        }
        {
            let now = wall_ms();
            let mut series = lock(&self.series);
            for a in alerts {
                let key = (a.key.device.0, a.metric_id.0);
                series.alerted.retain(|s| s.key != key);
                series.alerted.push_back(AlertedSeries {
                    key,
                    device: a.device.clone(),
                    metric: a.metric.clone(),
                    site: a.site.clone(),
                    open: a.kind == AlertKind::Fired,
                    last_alert_ms: now,
                });
                if series.alerted.len() > 64 {
                    series.alerted.pop_front();
                }
            }
        }
        self.alerts.extend(alerts.iter().map(|a| Arc::from(alert_json(a))));
    }

    /// Records closed windows' means for sparklines (one lock per batch).
    pub fn windows_closed(&self, windows: &[WindowAgg]) {
        if windows.is_empty() {
            return;
        }
        let mut series = lock(&self.series);
        let room = series.points.len() < SPARK_SERIES;
        for w in windows {
            let key = (w.device.0, w.metric.0);
            match series.points.get_mut(&key) {
                Some(s) => s.push((w.end, w.mean)),
                None if room => {
                    let mut s = SeriesPoints { points: VecDeque::with_capacity(SPARK_POINTS) };
                    s.push((w.end, w.mean));
                    series.points.insert(key, s);
                }
                None => {}
            }
        }
    }

    /// Alerts written so far by (rule or model, `fired`/`cleared`).
    pub fn alerts_by_source(&self) -> BTreeMap<(String, &'static str), u64> {
        let by = lock(&self.by_source);
        by.iter().map(|((source, kind), &n)| ((source.to_string(), *kind), n)).collect()
    }

    /// Marks the run finished and wakes every waiting reader.
    pub fn finish(&self) {
        self.finished.store(true, Ordering::Relaxed);
        self.alerts.changed.send_modify(|_| {});
    }

    /// Whether the run has finished.
    pub fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Relaxed)
    }

    /// Seconds since the run started.
    pub fn uptime_secs(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// A sampler starting now.
    pub fn sampler(&self) -> Sampler {
        Sampler {
            at: Instant::now(),
            records: Counters::get(&self.counters.records_in),
            alerts: self.alerts.last_seq(),
            buckets: self.latency.snapshot().0,
        }
    }

    /// Takes a sample of the interval since the last one and keeps it in the history.
    pub fn sample(&self, sampler: &mut Sampler) -> Sample {
        let now = Instant::now();
        let secs = now.duration_since(sampler.at).as_secs_f64().max(1e-3);
        let records = Counters::get(&self.counters.records_in);
        let alerts = self.alerts.last_seq();
        let buckets = self.latency.snapshot().0;
        // The interval's latency distribution is the difference of cumulative bucket counts.
        let delta: Vec<(f64, u64)> =
            buckets.iter().zip(&sampler.buckets).map(|(&(b, n), &(_, m))| (b, n.saturating_sub(m))).collect();
        let quantile = |q: f64| {
            let total = delta.last().map_or(0, |d| d.1);
            if total == 0 {
                return None;
            }
            let rank = ((q * total as f64).ceil() as u64).max(1);
            delta.iter().find(|d| d.1 >= rank).map(|d| {
                if d.0.is_finite() {
                    (d.0 * 1e6).round() as u64
                } else {
                    u64::MAX
                }
            })
        };
        let sample = Sample {
            t: wall_ms(),
            events_per_sec: records.saturating_sub(sampler.records) as f64 / secs,
            alerts_per_sec: alerts.saturating_sub(sampler.alerts) as f64 / secs,
            p50_us: quantile(0.5),
            p99_us: quantile(0.99),
            records_in: records,
        };
        *sampler = Sampler { at: now, records, alerts, buckets };
        let mut history = lock(&self.history);
        history.push_back(sample);
        while history.len() > HISTORY {
            history.pop_front();
        }
        sample
    }

    /// The kept samples, oldest first.
    pub fn history(&self) -> Vec<Sample> {
        lock(&self.history).iter().copied().collect()
    }

    /// Sparklines of the series that alerted most recently (newest first, at most `limit`).
    pub fn sparklines(&self, limit: usize) -> Vec<serde_json::Value> {
        let series = lock(&self.series);
        series
            .alerted
            .iter()
            .rev()
            .take(limit)
            .map(|s| {
                let points: Vec<[f64; 2]> = series
                    .points
                    .get(&s.key)
                    .map(|p| p.points.iter().map(|&(t, v)| [t as f64, v]).collect())
                    .unwrap_or_default();
                serde_json::json!({
                    "device": &*s.device,
                    "metric": &*s.metric,
                    "site": s.site.as_deref(),
                    "in_alert": s.open,
                    "last_alert_ms": s.last_alert_ms,
                    "points": points,
                })
            })
            .collect()
    }
}

impl SeriesPoints {
    fn push(&mut self, point: (u64, f64)) {
        // Windows arrive in event-time order per series; an alert's window may repeat one.
        if self.points.back().is_some_and(|&(t, _)| t >= point.0) {
            if self.points.back().is_some_and(|&(t, _)| t == point.0) {
                return;
            }
            self.points.clear();
        }
        self.points.push_back(point);
        while self.points.len() > SPARK_POINTS {
            self.points.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_log_hands_out_everything_after_a_cursor_and_reports_gaps() {
        let log = AlertLog::default();
        log.extend((0..5).map(|i| Arc::from(format!("a{i}"))));
        let (got, gap) = log.after(2, 10);
        assert!(!gap);
        assert_eq!(got.iter().map(|e| e.0).collect::<Vec<_>>(), vec![3, 4, 5]);
        assert_eq!(&*got[0].1, "a2");
        assert_eq!(log.after(5, 10).0.len(), 0);
        assert_eq!(log.latest(2).iter().map(|e| e.0).collect::<Vec<_>>(), vec![4, 5]);
        // Overflow the log: a reader at 0 has missed the dropped ones.
        log.extend((0..ALERT_LOG_CAPACITY).map(|i| Arc::from(format!("b{i}"))));
        let (got, gap) = log.after(0, 3);
        assert!(gap);
        assert_eq!(got[0].0, 6);
        assert_eq!(log.last_seq(), 5 + ALERT_LOG_CAPACITY as u64);
    }

    #[test]
    fn samples_measure_the_interval_not_the_run() {
        let t = Telemetry::new(Counters::shared(), "test".into(), 1, 0);
        let mut s = t.sampler();
        Counters::add(&t.counters.records_in, 1000);
        for _ in 0..99 {
            t.latency.record(400);
        }
        t.latency.record(20_000);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let a = t.sample(&mut s);
        assert!(a.events_per_sec > 0.0);
        assert_eq!(a.records_in, 1000);
        assert_eq!(a.p50_us, Some(500));
        assert_eq!(a.p99_us, Some(500));
        t.latency.record(3_000);
        let b = t.sample(&mut s);
        assert_eq!(b.p50_us, Some(5_000));
        assert_eq!(b.records_in, 1000);
        assert_eq!(t.history().len(), 2);
    }
}
