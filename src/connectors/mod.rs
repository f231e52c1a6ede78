//! Every source sensorflow can read, behind one shape: [`open`] gives a worker its
//! [`PartitionReader`]s and, for sources that track offsets, the [`Committer`]s that go with
//! them. This is the single place that lists the connectors; each has a module (a folder when
//! it has several parts), and the Kafka and MQTT ones also hold their alert sinks:
//!
//! - `parse`: the event builder every parser shares (names, limits, reasons for rejects);
//! - `text/`: JSON lines and CSV files, split into byte ranges over the workers;
//! - `nab`: the NAB corpus, a file per device; `simulator`: the built-in device fleet;
//! - `binlog/`: the binary event log (format, writer, reader);
//! - `kafka/`: partitions over the workers, offsets committed at the durable frontier;
//! - `mqtt/`: a shared subscription over the workers, every client on one session loop.

pub mod binlog;
pub mod kafka;
pub mod mqtt;
pub mod nab;
pub mod parse;
pub mod simulator;
pub mod text;

use std::path::{Path, PathBuf};

use sensorflow_operators::{Dictionary, PartitionReader, Poll};
use serde::{Deserialize, Serialize};

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use kafka::KafkaSourceConfig;
pub use mqtt::MqttSourceConfig;
use parse::{EventBuilder, Limits};
use simulator::{Labels, SimConfig, SimReader};

/// A failure setting up a connector.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The configuration cannot work: retrying the same settings will not help.
    #[error("{0}")]
    Config(String),
    /// A broker could not be reached, refused a request or did not answer in time.
    #[error("{message}")]
    Broker {
        /// What failed.
        message: String,
        /// Whether trying again later can help (a broker down or busy: yes; a request the
        /// broker rejects for what it is: no).
        retryable: bool,
    },
    /// The operating system refused a thread or an async runtime: a retry may help once
    /// resources are free.
    #[error("{0}")]
    System(String),
}

impl ConnectorError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        ConnectorError::Io { path: path.to_path_buf(), source }
    }

    /// A broker failure that a retry may cure (unreachable, busy, timed out).
    pub(crate) fn broker(message: impl Into<String>) -> Self {
        ConnectorError::Broker { message: message.into(), retryable: true }
    }

    /// Whether trying again later can help.
    pub fn retryable(&self) -> bool {
        match self {
            ConnectorError::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::Interrupted
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::WouldBlock
            ),
            ConnectorError::Config(_) => false,
            ConnectorError::Broker { retryable, .. } => *retryable,
            ConnectorError::System(_) => true,
        }
    }
}

/// Commits a source's progress once the run's output has caught up with it.
pub trait Committer: Send + Sync + std::fmt::Debug {
    /// Everything with event time below `durable` (`u64::MAX`: everything) has been written;
    /// `mark` is the frontier to record beside the offsets (see [`kafka::resume_frontier`]).
    /// `last` asks for a synchronous commit (the run is ending).
    fn commit(&self, durable: u64, mark: u64, last: bool);
}

/// Ends a live source once nothing has arrived for a while (`--until-idle`; tests and one-off
/// transfers), or never.
#[derive(Clone, Copy, Debug)]
pub(crate) struct UntilIdle {
    idle: Option<Duration>,
    last: Instant,
}

impl UntilIdle {
    pub(crate) fn new(idle_ms: Option<u64>) -> Self {
        UntilIdle { idle: idle_ms.map(Duration::from_millis), last: Instant::now() }
    }

    /// Something arrived: [`Poll::Ready`].
    pub(crate) fn arrived(&mut self) -> Poll {
        self.last = Instant::now();
        Poll::Ready
    }

    /// Nothing arrived because the source is cut off from its broker: not idle (what the
    /// broker keeps arrives after the reconnect), so the idle clock starts again.
    pub(crate) fn disconnected(&mut self) -> Poll {
        self.last = Instant::now();
        Poll::Pending
    }

    /// Nothing arrived: done once idle for long enough, otherwise pending.
    pub(crate) fn nothing(&self) -> Poll {
        match self.idle {
            Some(idle) if self.last.elapsed() >= idle => Poll::Done,
            _ => Poll::Pending,
        }
    }
}

/// A worker's readers plus the committers that go with them.
pub type Opened = (Vec<Box<dyn PartitionReader>>, Vec<Arc<dyn Committer>>);

/// Which source feeds the pipeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum SourceConfig {
    /// The built-in simulator.
    Simulator(SimConfig),
    /// JSON-lines files.
    Jsonl {
        /// Files to read.
        paths: Vec<PathBuf>,
    },
    /// CSV files with a header.
    Csv {
        /// Files to read.
        paths: Vec<PathBuf>,
    },
    /// A NAB corpus directory.
    Nab {
        /// Its root (holding `data/` or the category folders).
        root: PathBuf,
    },
    /// A binary event log written by `sensorflow record` (chunks spread over the workers).
    Log {
        /// The log file.
        path: PathBuf,
        /// Replay at event time × this factor (unset: as fast as possible).
        #[serde(default)]
        realtime: Option<f64>,
    },
    /// A Kafka topic (partitions spread over the workers, offsets committed at the frontier).
    Kafka(KafkaSourceConfig),
    /// An MQTT topic filter (a shared subscription across the workers).
    Mqtt(MqttSourceConfig),
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig::Simulator(SimConfig::default())
    }
}

impl SourceConfig {
    /// A short name for logs and dead letters.
    pub fn name(&self) -> &'static str {
        match self {
            SourceConfig::Simulator(_) => "simulator",
            SourceConfig::Jsonl { .. } => "jsonl",
            SourceConfig::Csv { .. } => "csv",
            SourceConfig::Nab { .. } => "nab",
            SourceConfig::Log { .. } => "log",
            SourceConfig::Kafka(_) => "kafka",
            SourceConfig::Mqtt(_) => "mqtt",
        }
    }
}

/// What a worker needs to open its readers.
#[derive(Clone, Debug)]
pub struct ReaderContext {
    /// This worker.
    pub index: usize,
    /// All workers.
    pub peers: usize,
    /// Names.
    pub dict: Dictionary,
    /// Validation limits.
    pub limits: Limits,
    /// Where simulator readers put ground truth.
    pub labels: Labels,
    /// Stop after about this many records in total (split over workers).
    pub max_events: Option<u64>,
}

impl ReaderContext {
    /// One reader thread that reads every partition (tools outside the dataflow: `record`,
    /// `train --data`), with default limits.
    pub fn single(dict: Dictionary, max_events: Option<u64>) -> Self {
        ReaderContext {
            index: 0,
            peers: 1,
            dict,
            limits: Limits::default(),
            labels: Labels::default(),
            max_events,
        }
    }

    pub(crate) fn builder(&self) -> EventBuilder {
        EventBuilder::new(self.dict.devices.clone(), self.dict.metrics.clone(), self.limits)
    }

    fn share(&self, total: u64) -> u64 {
        let peers = self.peers as u64;
        total / peers + u64::from((self.index as u64) < total % peers)
    }
}

/// Opens this worker's readers for `source`, with the committers of sources that track
/// offsets (the others return none).
pub fn open(source: &SourceConfig, ctx: &ReaderContext) -> Result<Opened, ConnectorError> {
    let readers: Vec<Box<dyn PartitionReader>> = match source {
        SourceConfig::Simulator(sim) => {
            sim.validate()?;
            let max = ctx.max_events.map_or(u64::MAX, |n| ctx.share(n));
            let reader = SimReader::new(sim, ctx.index, ctx.peers, max, &ctx.dict, ctx.labels.clone());
            vec![Box::new(reader)]
        }
        SourceConfig::Jsonl { paths } => text::jsonl_readers(paths, ctx)?,
        SourceConfig::Csv { paths } => text::csv_readers(paths, ctx)?,
        SourceConfig::Nab { root } => nab::nab_readers(root, ctx)?,
        SourceConfig::Log { path, realtime } => {
            if let Some(f) = realtime {
                if !(f.is_finite() && *f > 0.0) {
                    return Err(ConnectorError::Config(format!("replay speed must be positive, got {f}")));
                }
            }
            let reader = binlog::LogReader::new(path, ctx.index, ctx.peers, ctx.dict.clone(), *realtime);
            vec![Box::new(reader)]
        }
        SourceConfig::Kafka(k) => return kafka::kafka_readers(k, ctx),
        SourceConfig::Mqtt(m) => mqtt::mqtt_readers(m, ctx)?,
    };
    Ok((readers, Vec::new()))
}
