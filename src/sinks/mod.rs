//! Where the run's output goes: one [`Sink`] trait for every destination of lines (a file,
//! standard output, a Kafka topic, an MQTT broker), one de-duplicating [`AlertWriter`] over
//! it for alerts, and one [`Diverted`] writer for dead letters and late events; `json` renders
//! each of them as a JSON line.
//!
//! Adding a destination is one type that implements [`Sink`], plus, for alerts, its
//! [`AlertOutput`] variant and arm in [`AlertWriter::open`]. Files and standard output live
//! here, the Kafka and MQTT sinks beside their connectors
//! ([`crate::connectors::kafka::KafkaSink`], [`crate::connectors::mqtt::MqttSink`]).

pub mod diverted;
pub mod file;
pub mod json;

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use sensorflow_operators::Alert;

pub use diverted::Diverted;
pub use file::{open_episodes, FileSink, LineFile};
pub use json::{alert_json, dead_letter_json, late_json, round_sig};

use crate::config::AlertOutput;
use crate::connectors::kafka::KafkaSink;
use crate::connectors::mqtt::MqttSink;
use crate::Error;

/// One outgoing line with what a destination may address it by: Kafka keys it, MQTT picks a
/// topic from the device and metric, files and standard output take the payload alone.
#[derive(Clone, Copy, Debug)]
pub struct Message<'a> {
    /// The Kafka key (an alert id, or the device for events).
    pub key: &'a [u8],
    /// The device the line is about.
    pub device: &'a str,
    /// The metric the line is about.
    pub metric: &'a str,
    /// The line, without a newline.
    pub payload: &'a [u8],
}

/// A destination of lines.
pub trait Sink: Send + std::fmt::Debug {
    /// Ids an earlier run already wrote here (alert ids; read once, when a run starts).
    fn existing_ids(&mut self) -> Result<HashSet<String>, Error> {
        Ok(HashSet::new())
    }

    /// Sends one line (buffered: see [`Sink::flush`]).
    fn send(&mut self, m: &Message<'_>) -> Result<(), Error>;

    /// Returns once everything sent is written (a file) or acknowledged (a broker).
    fn flush(&mut self) -> Result<(), Error>;
}

/// JSON lines on standard output. A closed pipe (`| head`) is the reader's choice, not a
/// failure.
#[derive(Debug, Default)]
pub struct StdoutSink;

impl Sink for StdoutSink {
    fn send(&mut self, m: &Message<'_>) -> Result<(), Error> {
        let mut out = std::io::stdout().lock();
        match out.write_all(m.payload).and_then(|()| out.write_all(b"\n")) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::io(Path::new("<stdout>"), e)),
            _ => Ok(()),
        }
    }

    fn flush(&mut self) -> Result<(), Error> {
        let _ = std::io::stdout().flush();
        Ok(())
    }
}

/// The alert destination of a run. Writes each alert id at most once, including ids the
/// destination already held, so replaying input after a crash yields no duplicates.
#[derive(Debug)]
pub struct AlertWriter {
    /// `None` when alerts are only counted (`--alerts none`): nothing to de-duplicate.
    sink: Option<Box<dyn Sink>>,
    ids: HashSet<String>,
}

impl AlertWriter {
    /// Opens `output` and reads the ids it already holds.
    pub fn open(output: &AlertOutput) -> Result<Self, Error> {
        let sink: Box<dyn Sink> = match output {
            AlertOutput::None => return Ok(AlertWriter { sink: None, ids: HashSet::new() }),
            AlertOutput::Stdout => Box::new(StdoutSink),
            AlertOutput::File(path) => Box::new(FileSink::open(path)?),
            AlertOutput::Kafka { brokers, topic } => Box::new(KafkaSink::alerts(brokers, topic)?),
            AlertOutput::Mqtt { broker, prefix } => Box::new(MqttSink::alerts(broker, prefix)?),
        };
        Self::over(sink)
    }

    /// De-duplicates alerts written to `sink`.
    pub fn over(mut sink: Box<dyn Sink>) -> Result<Self, Error> {
        let ids = sink.existing_ids()?;
        Ok(AlertWriter { sink: Some(sink), ids })
    }

    /// Writes `alert` unless its id was written before; returns whether it was written.
    pub fn write(&mut self, alert: &Alert) -> Result<bool, Error> {
        let Some(sink) = self.sink.as_mut() else { return Ok(true) };
        let id = alert.id();
        if self.ids.contains(&id) {
            return Ok(false);
        }
        let line = alert_json(alert);
        let m = Message {
            key: id.as_bytes(),
            device: &alert.device,
            metric: &alert.metric,
            payload: line.as_bytes(),
        };
        sink.send(&m)?;
        self.ids.insert(id);
        Ok(true)
    }

    /// Flushes buffered output.
    pub fn flush(&mut self) -> Result<(), Error> {
        self.sink.as_mut().map_or(Ok(()), |s| s.flush())
    }
}
