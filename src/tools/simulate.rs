//! `sensorflow simulate`: writes the simulator's output as a labelled dataset.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sensorflow_operators::{lock, Dictionary, Event, PartitionReader, Poll, SourceBatch};

use crate::connectors::kafka::KafkaSink;
use crate::connectors::mqtt::MqttSink;
use crate::connectors::simulator::{Label, SimConfig, SimReader};
use crate::sinks::{LineFile, Message, Sink};
use crate::Error;

/// Output format of a dataset file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// CSV with a `device,metric,ts,value,seq` header.
    Csv,
}

impl Format {
    /// Guesses the format from a file extension (`.csv` → CSV, else JSON lines).
    pub fn from_path(path: &Path) -> Self {
        if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) {
            Format::Csv
        } else {
            Format::Jsonl
        }
    }
}

/// Where `simulate` sends events.
#[derive(Debug)]
pub enum Output {
    /// A dataset file.
    File {
        /// Path.
        path: PathBuf,
        /// Format.
        format: Format,
    },
    /// An MQTT broker: one QoS 1 message per event on `template` (e.g.
    /// `sensors/{device}/{metric}`), payload the JSON event.
    Mqtt {
        /// Broker `host:port`.
        broker: String,
        /// Topic pattern.
        template: String,
    },
    /// A Kafka topic, keyed by device (so a device's events stay in order in one partition).
    Kafka {
        /// Bootstrap servers.
        brokers: String,
        /// Topic.
        topic: String,
        /// Partitions to create the topic with if it does not exist.
        partitions: i32,
    },
}

/// What `simulate` wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// Events written.
    pub events: u64,
    /// Anomalies injected.
    pub labels: Vec<Label>,
    /// Where the labels went.
    pub labels_path: PathBuf,
}

/// The default labels path beside a dataset: `data.jsonl` → `data.labels.json`.
pub fn labels_path_for(out: &Path) -> PathBuf {
    let stem = out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "data".into());
    out.with_file_name(format!("{stem}.labels.json"))
}

/// Where `simulate` writes, as a [`Sink`]: a dataset file, or a broker (JSON payloads).
fn open_sink(out: &Output) -> Result<(Box<dyn Sink>, Format), Error> {
    Ok(match out {
        Output::File { path, format } => {
            let mut file = LineFile::create(path)?;
            if *format == Format::Csv {
                file.write_line("device,metric,ts,value,seq")?;
            }
            (Box::new(file), *format)
        }
        Output::Mqtt { broker, template } => (Box::new(MqttSink::events(broker, template)?), Format::Jsonl),
        Output::Kafka { brokers, topic, partitions } => {
            (Box::new(KafkaSink::events(brokers, topic, *partitions)?), Format::Jsonl)
        }
    })
}

/// One event as a line of `format`, into `line`.
fn render(format: Format, device: &str, metric: &str, e: &Event, line: &mut String) {
    use std::fmt::Write as _;
    line.clear();
    let _ = match format {
        Format::Csv => write!(line, "{device},{metric},{},{},{}", e.ts, e.value, e.seq),
        Format::Jsonl => write!(
            line,
            r#"{{"device":"{device}","metric":"{metric}","ts":{},"value":{},"seq":{}}}"#,
            e.ts, e.value, e.seq
        ),
    };
}

/// Simulates `config` (optionally at most `max_events`, at most `rate` events/s) into `out`,
/// with ground truth in `labels_out`.
pub fn simulate_to(
    config: &SimConfig,
    out: &Output,
    labels_out: &Path,
    max_events: Option<u64>,
    rate: Option<f64>,
) -> Result<Written, Error> {
    config.validate()?;
    if let Some(r) = rate {
        if !(r.is_finite() && r > 0.0) {
            return Err(Error::Config(format!("rate must be a positive number of events/s, got {r}")));
        }
    }
    let dict = Dictionary::default();
    let labels = crate::connectors::simulator::Labels::default();
    let mut reader = SimReader::new(config, 0, 1, max_events.unwrap_or(u64::MAX), &dict, labels.clone());
    let (mut sink, format) = open_sink(out)?;
    let mut batch = SourceBatch::default();
    let mut events = 0u64;
    let mut names: std::collections::HashMap<u64, String> = std::collections::HashMap::new();
    let mut line = String::with_capacity(128);
    let started = Instant::now();
    // Every series samples once per interval over the span (or stops at max_events).
    let planned =
        config.devices * config.metrics.len() as u64 * config.span_ms.div_ceil(config.interval_ms.max(1));
    let mut meter = crate::observe::progress::Meter::new(
        "simulate",
        Some(max_events.map_or(planned, |m| m.min(planned))),
        "events",
        Duration::from_secs(5),
    );
    let mut shown = Instant::now();
    let probed = sensorflow_operators::runtime::probe::active();
    loop {
        batch.events.clear();
        let poll = reader.poll(&mut batch)?;
        if shown.elapsed() >= Duration::from_millis(200) {
            shown = Instant::now();
            meter.set(events, String::new);
        }
        for e in &batch.events {
            let device = names.entry(e.device.0).or_insert_with(|| dict.device_name(e.device).to_string());
            let metric = dict.metric_name(e.metric);
            render(format, device, &metric, e, &mut line);
            sink.send(&Message {
                key: device.as_bytes(),
                device,
                metric: &metric,
                payload: line.as_bytes(),
            })?;
            if probed {
                sensorflow_operators::runtime::probe::record(
                    sensorflow_operators::runtime::probe::Hop::Published,
                    e.ts,
                    1,
                );
            }
            events += 1;
            if let Some(rate) = rate {
                // Pace to the offered rate: sleep whenever we are ahead of schedule.
                let due = Duration::from_secs_f64(events as f64 / rate);
                let now = started.elapsed();
                if due > now + Duration::from_micros(500) {
                    std::thread::sleep(due - now);
                }
            }
        }
        match poll {
            Poll::Done => break,
            Poll::Ready => {}
            Poll::Pending => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    meter.finish();
    sink.flush()?;
    let labels = lock(&labels).clone();
    let text = serde_json::to_string_pretty(&labels).map_err(|e| Error::Runtime(e.to_string()))?;
    std::fs::write(labels_out, text).map_err(|e| Error::io(labels_out, e))?;
    Ok(Written { events, labels, labels_path: labels_out.to_path_buf() })
}

/// Simulates `config` (optionally at most `max_events`) into the file `out`, with ground truth in
/// `labels_out`.
pub fn simulate(
    config: &SimConfig,
    out: &Path,
    format: Format,
    labels_out: &Path,
    max_events: Option<u64>,
) -> Result<Written, Error> {
    simulate_to(config, &Output::File { path: out.to_path_buf(), format }, labels_out, max_events, None)
}
