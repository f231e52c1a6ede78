//! The run configuration: a plain validated struct the engine reads. Built-in defaults are
//! overridden by a TOML file (`--config`), which is overridden by command-line flags.
//! `duration` parses `10s`-style durations; `rules` reads the rules file (and holds the
//! built-in `default_rules.toml`).

pub mod duration;
pub mod rules;

use std::path::PathBuf;
use std::time::Duration;

use sensorflow_operators::{
    BadRecordPolicy, ClockGuard, EventTimeMode, SourceOptions, StateIdle, WindowSpec,
};
use serde::{Deserialize, Serialize};

use crate::config::duration::serde_ms;
use crate::connectors::parse::Limits;
use crate::connectors::SourceConfig;
use crate::Error;

/// Where alerts go.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertOutput {
    /// JSON lines on standard output.
    #[default]
    Stdout,
    /// Appended as JSON lines to a file; keys already in the file are not written again.
    File(PathBuf),
    /// Counted only.
    None,
    /// Produced to a Kafka topic, keyed by alert id (a restarted run reads the topic's keys
    /// first and does not produce them again).
    Kafka {
        /// Bootstrap servers.
        brokers: String,
        /// Topic.
        topic: String,
    },
    /// Published at QoS 1 to `<prefix>/<device>` on an MQTT broker.
    Mqtt {
        /// Broker, `host:port`.
        broker: String,
        /// Topic prefix.
        prefix: String,
    },
}

impl AlertOutput {
    /// Parses `stdout`, `none`, `kafka://host:port/topic`, `mqtt://host:port/prefix` or a path.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let split = |rest: &str, what: &str| -> Result<(String, String), Error> {
            match rest.split_once('/') {
                Some((addr, topic)) if !addr.is_empty() && !topic.is_empty() => {
                    Ok((addr.to_string(), topic.to_string()))
                }
                _ => Err(Error::Config(format!("alerts: expected {what}://host:port/topic, got {s:?}"))),
            }
        };
        Ok(match s {
            "stdout" | "-" => AlertOutput::Stdout,
            "none" => AlertOutput::None,
            _ => {
                if let Some(rest) = s.strip_prefix("kafka://") {
                    let (brokers, topic) = split(rest, "kafka")?;
                    AlertOutput::Kafka { brokers, topic }
                } else if let Some(rest) = s.strip_prefix("mqtt://") {
                    let (broker, prefix) = split(rest, "mqtt")?;
                    AlertOutput::Mqtt { broker, prefix }
                } else {
                    AlertOutput::File(s.into())
                }
            }
        })
    }
}

/// Against whose progress events are judged late.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventTime {
    /// Their partition's newest event (input in time order, or nearly).
    #[default]
    Partition,
    /// Their device's newest event, within `device_spread` of the partition's newest (files
    /// ordered per device: recordings of several devices one after another).
    Device,
}

/// Everything `sensorflow run` needs. Every field can be set in the TOML file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// The input.
    pub source: SourceConfig,
    /// Worker threads in this process.
    pub workers: usize,
    /// Processes in the cluster (timely's cluster mode when above 1).
    pub processes: usize,
    /// This process's index, `0..processes`.
    pub process: usize,
    /// File with one `host:port` per process (default: 127.0.0.1:2101, :2102, ...).
    pub hostfile: Option<PathBuf>,
    /// Window length, ms (`"10s"` in files).
    #[serde(deserialize_with = "serde_ms::deserialize")]
    pub window: u64,
    /// Window hop, ms; 0 or equal to `window` means tumbling.
    #[serde(deserialize_with = "serde_ms::deserialize")]
    pub hop: u64,
    /// Allowed lateness per source partition (per device with `event_time = "device"`), ms.
    #[serde(deserialize_with = "serde_ms::deserialize")]
    pub lateness: u64,
    /// `partition`: an event is late behind its partition's newest minus the lateness.
    /// `device`: behind its device's newest minus the lateness, or behind its partition's
    /// newest minus `device_spread`; windows then close `device_spread` later.
    pub event_time: EventTime,
    /// With `event_time = "device"`: how far devices of one partition may differ in event
    /// time, ms (> 0; default 1 day).
    #[serde(deserialize_with = "serde_ms::deserialize")]
    pub device_spread: u64,
    /// A partition with nothing to read for this long stops holding the watermark, ms.
    #[serde(deserialize_with = "serde_ms::deserialize")]
    pub idle_timeout: u64,
    /// Live sources (Kafka, MQTT), opt-in: the watermark also follows the wall clock this far
    /// behind it, ms, so windows close on time even when every partition goes quiet; events it
    /// overtakes are late. Such runs are not deterministic (unset: pure event time).
    #[serde(deserialize_with = "opt_ms")]
    pub wall_clock_watermark: Option<u64>,
    /// What to do with records that fail to parse.
    pub on_bad_record: BadRecordPolicy,
    /// Events stamped before this time (epoch ms) are dead letters ("timestamp out of range").
    pub min_ts: u64,
    /// Events further ahead of the wall clock than this are dead letters, ms; 0: no limit.
    #[serde(deserialize_with = "serde_ms::deserialize")]
    pub max_future: u64,
    /// An event further ahead of its partition's newest than this is a dead letter unless 64
    /// events in a row (or the end of the input) confirm the jump, ms; 0: no limit.
    #[serde(deserialize_with = "serde_ms::deserialize")]
    pub max_jump: u64,
    /// Flow control: the most events one worker's source may have in the graph, not yet
    /// through to its end; past it the source holds back any partition ahead of the graph, so
    /// memory stays bounded whatever the input size or rate (at least 1,024).
    pub max_in_flight: usize,
    /// Per-series and per-device state (de-duplication, model history and calibration, device
    /// models, pending rule episodes) idle this long in event time is dropped, ms; 0: never.
    /// State with an open alert stays until the alert clears.
    #[serde(deserialize_with = "serde_ms::deserialize")]
    pub state_idle: u64,
    /// Largest accepted |value|.
    pub max_abs_value: f64,
    /// Rules file; `None` uses the built-in default rules.
    pub rules: Option<PathBuf>,
    /// Re-read the rules file when it changes.
    pub reload_rules: bool,
    /// Alert destination.
    pub alerts: AlertOutput,
    /// Dead-letter file (JSON lines); without one, the first few go to stderr.
    pub dead_letters: Option<PathBuf>,
    /// Late-event file (JSON lines); without one, late events are only counted.
    pub late_events: Option<PathBuf>,
    /// Kafka sources: a file recording the output frontier at each offset commit, so a
    /// restarted run knows which alerts were already written (default with an alert file:
    /// `<alerts>.checkpoint`). Kafka's own commit metadata is used as well where the broker
    /// keeps it.
    pub checkpoint: Option<PathBuf>,
    /// Stop after this many source records (simulator).
    pub max_events: Option<u64>,
    /// Stop after this much wall-clock time, ms.
    #[serde(deserialize_with = "opt_ms")]
    pub duration: Option<u64>,
    /// Anomaly model: `default` (the student shipped in the binary), `none`, or the path of a
    /// model card (`dir/name.json`, weights beside it as `name.bpk`), reloaded on change.
    pub model: String,
    /// Device-level model over rows of every metric of a device per window: `default` (the
    /// learned row model shipped in the binary for devices with its metrics and row interval,
    /// the statistical model for other devices of two or more metrics), `none`,
    /// `statistical` (virtual-sensor regressions learned on each device's warm-up, see
    /// `sensorflow_models::device`), or the path of a learned row-model card (`name.json`,
    /// weights beside it as `name.bpk`, made by `sensorflow train --data`): devices whose
    /// metrics are the card's use it, other devices the statistical model.
    pub device_model: String,
    /// Rows (windows) of warm-up per device before the device model scores; 0 (the default):
    /// 1,800 rows, or an hour of event time where that is more rows.
    pub device_warmup: usize,
    /// Warm-up per device in event time instead (e.g. `"2h"`): that many window hops of rows;
    /// overrides `device_warmup` when set.
    #[serde(deserialize_with = "opt_ms")]
    pub device_warmup_time: Option<u64>,
    /// Write every device row's score and state here (CSV: `device,ts,score,state`).
    pub scores: Option<PathBuf>,
    /// Print the summary table at the end.
    pub summary: bool,
    /// Write the run's counts as JSON here at the end (`sensorflow cluster` sums its
    /// processes' counts from these).
    pub counts_json: Option<PathBuf>,
    /// Serve `/metrics`, `/alerts`, `/healthz` and the dashboard on this address while the
    /// run lasts (`127.0.0.1:9898`; port 0 picks one). In a cluster, process I uses port + I.
    pub http: Option<String>,
    /// Export `source_batch`, `score_batch` and `alert` spans to this OTLP/HTTP endpoint
    /// (`http://host:4318`, or the full `…/v1/traces` URL).
    pub otlp_endpoint: Option<String>,
}

/// The device model's default warm-up: at least this many rows…
const DEFAULT_WARMUP_ROWS: usize = 1800;
/// …and at least this much event time, ms (chosen on the pump rig's design seeds 105–107,
/// rows of 1 s: 1,800 rows left a false-alarm rate of 3.6–9.9 % with the shipped pump model,
/// an hour 3.2–4.0 %; see models/EXPERIMENTS.md).
const DEFAULT_WARMUP_MS: u64 = 3_600_000;

fn opt_ms<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    serde_ms::deserialize(d).map(Some)
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            source: SourceConfig::default(),
            workers: 1,
            processes: 1,
            process: 0,
            hostfile: None,
            window: 10_000,
            hop: 0,
            lateness: 0,
            event_time: EventTime::Partition,
            device_spread: 86_400_000,
            idle_timeout: 5_000,
            wall_clock_watermark: None,
            on_bad_record: BadRecordPolicy::DeadLetter,
            min_ts: ClockGuard::default().min_ts_ms,
            max_future: ClockGuard::default().max_future_ms.unwrap_or(0),
            max_jump: ClockGuard::default().max_jump_ms.unwrap_or(0),
            max_in_flight: 262_144,
            state_idle: 3_600_000,
            max_abs_value: Limits::default().max_abs_value,
            rules: None,
            reload_rules: true,
            alerts: AlertOutput::Stdout,
            dead_letters: None,
            late_events: None,
            checkpoint: None,
            max_events: None,
            duration: None,
            model: "default".into(),
            device_model: "default".into(),
            device_warmup: 0,
            device_warmup_time: None,
            scores: None,
            summary: true,
            counts_json: None,
            http: None,
            otlp_endpoint: None,
        }
    }
}

impl RunConfig {
    /// Reads a TOML config file over the defaults.
    pub fn from_toml(text: &str) -> Result<Self, Error> {
        toml::from_str(text).map_err(|e| Error::Config(format!("config file: {e}")))
    }

    /// The address this process's HTTP server listens on, if any.
    pub fn http_addr(&self) -> Result<Option<String>, Error> {
        let Some(addr) = &self.http else { return Ok(None) };
        if self.processes <= 1 {
            return Ok(Some(addr.clone()));
        }
        let sock: std::net::SocketAddr =
            addr.parse().map_err(|e| Error::Config(format!("--http {addr}: expected IP:PORT ({e})")))?;
        let port = if sock.port() == 0 {
            0
        } else {
            u16::try_from(self.process).ok().and_then(|p| sock.port().checked_add(p)).ok_or_else(|| {
                Error::Config(format!("--http {addr}: port + process {} is over 65535", self.process))
            })?
        };
        Ok(Some(std::net::SocketAddr::new(sock.ip(), port).to_string()))
    }

    /// The window shape.
    pub fn window_spec(&self) -> Result<WindowSpec, Error> {
        let hop = if self.hop == 0 { self.window } else { self.hop };
        WindowSpec::sliding(self.window, hop).map_err(|e| Error::Config(e.to_string()))
    }

    /// The device model's warm-up in rows: `device_warmup`, or `device_warmup_time` in window
    /// hops (rounded up), or by default 1,800 rows or an hour's worth of hops, whichever is more.
    pub fn device_warmup_rows(&self) -> Result<usize, Error> {
        match self.device_warmup_time {
            Some(ms) => {
                let hop = self.window_spec()?.hop_ms.max(1);
                Ok(usize::try_from(ms.div_ceil(hop)).unwrap_or(usize::MAX))
            }
            None if self.device_warmup == 0 => {
                let hop = self.window_spec()?.hop_ms.max(1);
                Ok(usize::try_from(DEFAULT_WARMUP_MS.div_ceil(hop))
                    .unwrap_or(usize::MAX)
                    .max(DEFAULT_WARMUP_ROWS))
            }
            None => Ok(self.device_warmup),
        }
    }

    /// How long idle per-key state is kept.
    pub fn state_idle_setting(&self) -> StateIdle {
        StateIdle((self.state_idle > 0).then_some(self.state_idle))
    }

    /// Source settings.
    pub fn source_options(&self) -> SourceOptions {
        SourceOptions {
            lateness_ms: self.lateness,
            event_time: match self.event_time {
                EventTime::Partition => EventTimeMode::Partition,
                EventTime::Device => EventTimeMode::Device { spread_ms: self.device_spread },
            },
            idle_timeout: Duration::from_millis(self.idle_timeout),
            policy: self.on_bad_record,
            clock_guard: ClockGuard {
                min_ts_ms: self.min_ts,
                max_future_ms: (self.max_future > 0).then_some(self.max_future),
                max_jump_ms: (self.max_jump > 0).then_some(self.max_jump),
                ..ClockGuard::default()
            },
            max_in_flight: Some(self.max_in_flight),
            wall_clock_delay: self.wall_clock_watermark.map(Duration::from_millis),
        }
    }

    /// The timely configuration: one process, or this process of a cluster.
    pub fn timely_config(&self) -> Result<timely::Config, Error> {
        if self.processes <= 1 {
            return Ok(timely::Config::process(self.workers));
        }
        let addresses: Vec<String> = match &self.hostfile {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(String::from)
                    .collect()
            }
            None => (0..self.processes).map(|i| format!("127.0.0.1:{}", 2101 + i)).collect(),
        };
        if addresses.len() != self.processes {
            return Err(Error::Config(format!(
                "the hostfile lists {} addresses for {} processes",
                addresses.len(),
                self.processes
            )));
        }
        Ok(timely::Config {
            communication: timely::CommunicationConfig::Cluster {
                threads: self.workers,
                process: self.process,
                addresses,
                report: false,
                zerocopy: false,
            },
            worker: timely::WorkerConfig::default(),
        })
    }

    /// Where this process writes alerts: in a cluster, each process has its own file
    /// (`alerts.jsonl` → `alerts.p1.jsonl`).
    pub fn process_alerts(&self) -> AlertOutput {
        match &self.alerts {
            AlertOutput::File(path) if self.processes > 1 => {
                let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                let name = match path.extension() {
                    Some(ext) => format!("{stem}.p{}.{}", self.process, ext.to_string_lossy()),
                    None => format!("{stem}.p{}", self.process),
                };
                AlertOutput::File(path.with_file_name(name))
            }
            other => other.clone(),
        }
    }

    /// The checkpoint file in effect: the configured one, or one beside the alert file.
    pub fn checkpoint_path(&self) -> Option<PathBuf> {
        match (&self.checkpoint, &self.process_alerts(), &self.source) {
            (Some(p), _, _) => Some(p.clone()),
            (None, AlertOutput::File(a), SourceConfig::Kafka(_)) => {
                let mut name = a.as_os_str().to_owned();
                name.push(".checkpoint");
                Some(PathBuf::from(name))
            }
            _ => None,
        }
    }

    /// Checks everything that can be checked before starting.
    pub fn validate(&self) -> Result<(), Error> {
        if self.workers == 0 || self.workers > 1024 {
            return Err(Error::Config(format!("workers must be 1..=1024, got {}", self.workers)));
        }
        self.window_spec()?;
        if self.processes > 1024 {
            return Err(Error::Config(format!("processes must be 1..=1024, got {}", self.processes)));
        }
        if self.processes == 0 || self.process >= self.processes {
            return Err(Error::Config(format!(
                "process must be in 0..{} (processes), got {}",
                self.processes, self.process
            )));
        }
        // Shorter than a window, state would be dropped while the window that needs it is open.
        let least_idle = self.window.max(1_000);
        if self.state_idle > 0 && self.state_idle < least_idle {
            return Err(Error::Config(format!(
                "state_idle must be 0 (never) or at least the window and 1 s ({least_idle} ms), got {} ms",
                self.state_idle
            )));
        }
        if !(1_024..=1 << 32).contains(&self.max_in_flight) {
            return Err(Error::Config(format!(
                "max_in_flight must be 1024..=4294967296 events per worker, got {}",
                self.max_in_flight
            )));
        }
        if self.event_time == EventTime::Device && self.device_spread == 0 {
            return Err(Error::Config(
                "device_spread must be above 0 with event_time = device (how far devices may differ in \
                 event time, e.g. --device-spread 1d)"
                    .into(),
            ));
        }
        if self.wall_clock_watermark.is_some()
            && !matches!(self.source, SourceConfig::Kafka(_) | SourceConfig::Mqtt(_))
        {
            return Err(Error::Config(format!(
                "wall_clock_watermark is for live sources (kafka, mqtt), not {}: a recorded or \
                 simulated stream keeps pure event time",
                self.source.name()
            )));
        }
        if self.wall_clock_watermark.is_some_and(|d| d > 86_400_000) {
            return Err(Error::Config("wall_clock_watermark must be at most 1 day".into()));
        }
        if !(self.max_abs_value.is_finite() && self.max_abs_value > 0.0) {
            return Err(Error::Config("max_abs_value must be a positive number".into()));
        }
        if let SourceConfig::Simulator(sim) = &self.source {
            sim.validate().map_err(|e| Error::Config(e.to_string()))?;
        }
        if !matches!(self.device_model.as_str(), "default" | "none" | "statistical")
            && !self.device_model.ends_with(".json")
        {
            return Err(Error::Config(format!(
                "device_model must be default, none, statistical or a row-model card (.json), got {:?}",
                self.device_model
            )));
        }
        let rows = self.device_warmup_rows()?;
        if !(50..=10_000_000).contains(&rows) {
            return Err(Error::Config(match self.device_warmup_time {
                Some(ms) => format!(
                    "device_warmup_time {} ms is {rows} rows of {} ms; it must be 50..=10000000 rows",
                    ms,
                    self.window_spec()?.hop_ms
                ),
                None => format!("device_warmup must be 50..=10000000 rows, got {rows}"),
            }));
        }
        if self.scores.is_some() && self.device_model == "none" {
            return Err(Error::Config("scores needs a device model (--device-model statistical)".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wall_clock_watermark_is_refused_for_recorded_and_simulated_sources() {
        let mut c = RunConfig { wall_clock_watermark: Some(200), ..RunConfig::default() };
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("live sources") && err.contains("simulator"), "{err}");
        c.source = SourceConfig::Kafka(crate::connectors::KafkaSourceConfig::new("localhost:9092", "t"));
        assert!(c.validate().is_ok());
        assert_eq!(c.source_options().wall_clock_delay, Some(Duration::from_millis(200)));
        c.wall_clock_watermark = Some(2 * 86_400_000);
        assert!(c.validate().is_err());
    }

    #[test]
    fn toml_over_defaults() {
        let c = RunConfig::from_toml(
            r#"
            workers = 2
            window = "1s"
            hop = "250ms"
            alerts = { file = "out.jsonl" }
            [source]
            kind = "simulator"
            devices = 10
            "#,
        )
        .unwrap();
        assert_eq!((c.workers, c.window, c.hop), (2, 1000, 250));
        assert_eq!(c.alerts, AlertOutput::File("out.jsonl".into()));
        let SourceConfig::Simulator(sim) = &c.source else { panic!("expected simulator") };
        assert_eq!(sim.devices, 10);
        assert_eq!(sim.seed, 42, "unset simulator fields keep their defaults");
        assert_eq!(c.idle_timeout, RunConfig::default().idle_timeout);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        assert!(RunConfig::from_toml("wokers = 2").is_err());
        assert!(RunConfig::from_toml("[source]\nkind = \"simulator\"\ndevcies = 3").is_err());
        assert!(RunConfig::from_toml("window = \"10 parsecs\"").is_err());
        let c = RunConfig { window: 1000, hop: 300, ..RunConfig::default() };
        assert!(c.validate().is_err());
        let c = RunConfig { workers: 0, ..RunConfig::default() };
        assert!(c.validate().is_err());
    }

    #[test]
    fn state_idle_is_never_or_at_least_the_window() {
        let ok = |idle| RunConfig { state_idle: idle, window: 10_000, ..RunConfig::default() }.validate();
        assert!(ok(0).is_ok() && ok(10_000).is_ok() && ok(3_600_000).is_ok());
        let e = ok(9_999).unwrap_err().to_string();
        assert!(e.contains("state_idle must be 0 (never) or at least") && e.contains("10000 ms"), "{e}");
        let short = RunConfig { state_idle: 500, window: 100, ..RunConfig::default() };
        assert!(short.validate().is_err(), "under a second");
        let e = RunConfig::from_toml("state_idle = \"a while\"").unwrap_err().to_string();
        assert!(e.contains("state_idle"), "{e}");
    }

    #[test]
    fn device_event_time_from_toml_needs_a_spread_above_zero() {
        let c = RunConfig::from_toml("event_time = \"device\"\ndevice_spread = \"2h\"").unwrap();
        assert_eq!(c.source_options().event_time, EventTimeMode::Device { spread_ms: 7_200_000 });
        assert_eq!(RunConfig::default().source_options().event_time, EventTimeMode::Partition);
        let e = RunConfig::from_toml("event_time = \"device\"\ndevice_spread = 0").unwrap().validate();
        assert!(e.unwrap_err().to_string().contains("device_spread must be above 0"));
        let e = RunConfig::from_toml("event_time = \"per-key\"").unwrap_err().to_string();
        assert!(e.contains("event_time") && e.contains("partition") && e.contains("device"), "{e}");
    }
}
