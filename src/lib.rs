//! sensorflow: event-time stream processing for IoT sensor telemetry on timely-dataflow.
//!
//! The library holds the engine (config, connectors, pipeline assembly, sinks); the binary
//! adds the command line. Operators live in `sensorflow-operators`, models and the
//! synthetic signal generator in `sensorflow-models`.
#![deny(missing_docs)]

pub mod config;
pub mod connectors;
pub mod engine;
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
    /// The dataflow runtime failed.
    #[error("runtime: {0}")]
    Runtime(String),
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io { path: path.to_path_buf(), source }
    }
}
