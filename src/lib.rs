//! sensorflow: event-time stream processing for IoT sensor telemetry on timely-dataflow.
//!
//! The library, by job:
//!
//! - [`config`]: [`RunConfig`] and its parts, durations, the rules file and default rules;
//! - [`engine`]: [`run`] — the dataflow graph, the worker loop, durable commits and resume,
//!   the rules watch, the scorer factory, the [`Summary`];
//! - [`connectors`]: every source behind one `open()` (text files, NAB, the simulator, the
//!   binary log, Kafka, MQTT), with the Kafka and MQTT sinks beside their sources;
//! - [`sinks`]: the one `Sink` trait, the de-duplicating alert writer, the dead-letter and
//!   late-event writer;
//! - [`observe`]: live telemetry, logs and traces, progress, the HTTP server and dashboard;
//! - [`tools`]: commands built on the engine (simulate, record, bridge, bench, plot, …).
//!
//! The binary (`src/main.rs`, `src/cli/`) adds the command line. The timely operators and the
//! event vocabulary live in `sensorflow-operators`; the synthetic signal generator, the NAB
//! scorer and the Burn detector in `sensorflow-models`.
#![deny(missing_docs)]

pub mod config;
pub mod connectors;
pub mod engine;
#[doc(hidden)]
pub mod fuzzing;
pub mod observe;
pub mod sinks;
pub mod tools;

use std::path::{Path, PathBuf};

pub use config::{AlertOutput, RunConfig};
pub use engine::summary::Summary;
pub use engine::{run, run_collect, run_with, Collected, RunHandle};
pub use sensorflow_operators::timefmt;

/// What can go wrong in a run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot work; fix it and retry.
    #[error("configuration: {0}")]
    Config(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A connector could not be set up.
    #[error(transparent)]
    Connector(#[from] connectors::ConnectorError),
    /// A source failed while running.
    #[error(transparent)]
    Source(#[from] sensorflow_operators::SourceError),
    /// The rules file is unusable.
    #[error(transparent)]
    Rules(#[from] config::rules::RulesError),
    /// The anomaly model cannot be loaded.
    #[error(transparent)]
    Model(#[from] sensorflow_models::detector::artifact::ModelError),
    /// The NAB corpus or a detector's NAB result files are unusable.
    #[error(transparent)]
    Nab(#[from] sensorflow_models::nab::NabError),
    /// Operator state snapshots could not be written or restored.
    #[error(transparent)]
    Snapshot(#[from] sensorflow_operators::SnapshotError),
    /// The dataflow runtime failed.
    #[error("runtime: {0}")]
    Runtime(String),
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io { path: path.to_path_buf(), source }
    }

    /// Whether running again unchanged may succeed: a broker that was down or busy, a read
    /// that was interrupted, a model file still being copied in. Configuration, rules, corrupt
    /// input and runtime failures need a fix first.
    pub fn retryable(&self) -> bool {
        use std::io::ErrorKind::{Interrupted, TimedOut, WouldBlock};
        match self {
            Error::Connector(e) => e.retryable(),
            Error::Source(e) => e.retryable,
            Error::Io { source, .. } => matches!(source.kind(), Interrupted | TimedOut | WouldBlock),
            Error::Model(sensorflow_models::detector::artifact::ModelError::Io { .. }) => true,
            Error::Snapshot(e) => e.is_retryable(),
            Error::Config(_) | Error::Rules(_) | Error::Model(_) | Error::Nab(_) | Error::Runtime(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broker_failure_is_retryable_and_a_bad_setting_is_not() {
        let down = Error::Connector(connectors::ConnectorError::broker("kafka: cannot reach 127.0.0.1:1"));
        assert!(down.retryable());
        assert!(!Error::Config("workers must be 1..=1024, got 0".into()).retryable());
        let topic = connectors::kafka::check_topic("no spaces allowed").expect_err("an invalid topic name");
        assert!(!Error::Connector(topic).retryable());
    }
}
