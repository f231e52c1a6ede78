//! Where alerts, dead letters and late events go.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sensorflow_operators::{Alert, AlertKind, DeadLetter, Dictionary, LateEvent};
use serde::Serialize;

use crate::connectors::kafka::KafkaProducer;
use crate::connectors::mqtt::MqttPublisher;
use crate::timefmt::format_datetime;
use crate::Error;

/// One alert as a JSON line.
#[derive(Serialize)]
struct AlertLine<'a> {
    id: String,
    kind: AlertKind,
    device: &'a str,
    metric: &'a str,
    rule: &'a str,
    condition: &'a str,
    value: f64,
    threshold: f64,
    episode_start: u64,
    window_start: u64,
    window_end: u64,
    window_start_time: String,
    severity: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    site: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<&'a str>,
}

/// `x` to `digits` significant decimal digits, for display (windows keep more bits).
pub fn round_sig(x: f64, digits: i32) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(digits - 1 - x.abs().log10().floor() as i32);
    let r = (x * scale).round() / scale;
    if r.is_finite() {
        r
    } else {
        x
    }
}

/// Renders an alert as one JSON line (no newline).
pub fn alert_json(a: &Alert) -> String {
    let line = AlertLine {
        id: a.id(),
        kind: a.kind,
        device: &a.device,
        metric: &a.metric,
        rule: &a.key.source,
        condition: &a.condition,
        value: round_sig(a.value, 12),
        threshold: a.threshold,
        episode_start: a.key.window_start,
        window_start: a.window_start,
        window_end: a.window_end,
        window_start_time: format_datetime(a.window_start),
        severity: &a.severity,
        site: a.site.as_deref(),
        owner: a.owner.as_deref(),
    };
    // Serializing this struct cannot fail: no maps with non-string keys, floats become null.
    serde_json::to_string(&line).unwrap_or_default()
}

/// The alert destination of a run. Writes each alert id at most once, including ids already
/// in an existing alert file, so replaying input after a crash yields no duplicates.
#[derive(Debug)]
pub enum AlertWriter {
    /// Standard output.
    Stdout(HashSet<String>),
    /// A file, with the ids it holds.
    File {
        /// Path, for errors.
        path: PathBuf,
        /// The writer.
        out: BufWriter<File>,
        /// Ids written (now or by earlier runs).
        ids: HashSet<String>,
    },
    /// A Kafka topic, keyed by alert id.
    Kafka {
        /// The producer.
        producer: Box<KafkaProducer>,
        /// Ids produced (now or by earlier runs, read back from the topic at start).
        ids: HashSet<String>,
    },
    /// An MQTT broker, `<prefix>/<device>` at QoS 1.
    Mqtt {
        /// The publisher.
        publisher: Box<MqttPublisher>,
        /// Topic prefix.
        prefix: String,
        /// Ids published by this run.
        ids: HashSet<String>,
    },
    /// Nowhere.
    Discard,
}

impl AlertWriter {
    /// A Kafka sink; reads the keys already in the topic so a restarted run adds none twice.
    pub fn kafka(brokers: &str, topic: &str) -> Result<Self, Error> {
        crate::connectors::kafka::ensure_topic(brokers, topic, 1)?;
        let keys = crate::connectors::kafka::existing_keys(brokers, topic, Duration::from_millis(1500))?;
        let ids = keys.into_iter().filter_map(|k| String::from_utf8(k).ok()).collect();
        Ok(AlertWriter::Kafka { producer: Box::new(KafkaProducer::new(brokers, topic)?), ids })
    }

    /// An MQTT sink.
    pub fn mqtt(broker: &str, prefix: &str) -> Result<Self, Error> {
        let publisher = MqttPublisher::connect(broker, "sensorflow-alerts")?;
        Ok(AlertWriter::Mqtt { publisher: Box::new(publisher), prefix: prefix.into(), ids: HashSet::new() })
    }

    /// Opens `path` for appending, reading the ids of alerts it already holds. A last line cut
    /// short (the process was killed mid-write) is removed: the run that follows re-derives it.
    pub fn file(path: &Path) -> Result<Self, Error> {
        let mut ids = HashSet::new();
        if let Ok(mut existing) = OpenOptions::new().read(true).write(true).open(path) {
            let len = existing.metadata().map_err(|e| Error::io(path, e))?.len();
            if len > 0 {
                let mut last = [0u8; 1];
                existing.seek(SeekFrom::Start(len - 1)).map_err(|e| Error::io(path, e))?;
                existing.read_exact(&mut last).map_err(|e| Error::io(path, e))?;
                if last[0] != b'\n' {
                    let keep = complete_lines_len(&mut existing, len).map_err(|e| Error::io(path, e))?;
                    existing.set_len(keep).map_err(|e| Error::io(path, e))?;
                }
                existing.seek(SeekFrom::Start(0)).map_err(|e| Error::io(path, e))?;
            }
            for line in BufReader::new(existing).split(b'\n') {
                let line = line.map_err(|e| Error::io(path, e))?;
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&line) {
                    if let Some(id) = v.get("id").and_then(|id| id.as_str()) {
                        ids.insert(id.to_string());
                    }
                }
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(|e| Error::io(path, e))?;
        Ok(AlertWriter::File { path: path.to_path_buf(), out: BufWriter::new(file), ids })
    }

    /// Writes `alert` unless its id was written before; returns whether it was written.
    pub fn write(&mut self, alert: &Alert) -> Result<bool, Error> {
        match self {
            AlertWriter::Discard => Ok(true),
            AlertWriter::Stdout(ids) => {
                if !ids.insert(alert.id()) {
                    return Ok(false);
                }
                let mut out = std::io::stdout().lock();
                match writeln!(out, "{}", alert_json(alert)) {
                    Ok(()) => Ok(true),
                    // A closed pipe (`| head`) is the reader's choice, not our failure.
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(true),
                    Err(e) => Err(Error::io(Path::new("<stdout>"), e)),
                }
            }
            AlertWriter::File { path, out, ids } => {
                if !ids.insert(alert.id()) {
                    return Ok(false);
                }
                writeln!(out, "{}", alert_json(alert)).map_err(|e| Error::io(path, e))?;
                Ok(true)
            }
            AlertWriter::Kafka { producer, ids } => {
                let id = alert.id();
                if ids.contains(&id) {
                    return Ok(false);
                }
                producer.send(id.as_bytes(), alert_json(alert).as_bytes())?;
                producer.poll();
                ids.insert(id);
                Ok(true)
            }
            AlertWriter::Mqtt { publisher, prefix, ids } => {
                let id = alert.id();
                if ids.contains(&id) {
                    return Ok(false);
                }
                publisher.publish(&format!("{prefix}/{}", alert.device), alert_json(alert).as_bytes())?;
                ids.insert(id);
                Ok(true)
            }
        }
    }

    /// Flushes buffered output.
    pub fn flush(&mut self) -> Result<(), Error> {
        match self {
            AlertWriter::File { path, out, .. } => out.flush().map_err(|e| Error::io(path, e)),
            AlertWriter::Stdout(_) => {
                let _ = std::io::stdout().flush();
                Ok(())
            }
            AlertWriter::Kafka { producer, .. } => Ok(producer.flush(Duration::from_secs(30))?),
            AlertWriter::Mqtt { publisher, .. } => Ok(publisher.flush(Duration::from_secs(30))?),
            AlertWriter::Discard => Ok(()),
        }
    }
}

/// Episodes that were open at dataflow time `at` according to an alert file: a `fired` before
/// `at` and no `cleared` before it, as (device, rule, episode start). Transitions at or after
/// `at` are ignored: a killed run may have written some of them ahead of its last checkpoint,
/// and the run that resumes at `at` derives them again.
pub fn open_episodes(path: &Path, at: u64) -> Result<Vec<(String, String, u64)>, Error> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut open = std::collections::BTreeMap::new();
    for line in BufReader::new(file).split(b'\n') {
        let line = line.map_err(|e| Error::io(path, e))?;
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&line) else { continue };
        let (Some(device), Some(rule), Some(since), Some(kind), Some(end)) = (
            v["device"].as_str(),
            v["rule"].as_str(),
            v["episode_start"].as_u64(),
            v["kind"].as_str(),
            v["window_end"].as_u64(),
        ) else {
            continue;
        };
        // An alert is made at its window's last millisecond.
        if end.saturating_sub(1) >= at {
            continue;
        }
        let key = (device.to_string(), rule.to_string(), since);
        match kind {
            "fired" => open.insert(key, ()),
            _ => open.remove(&key),
        };
    }
    Ok(open.into_keys().collect())
}

/// Length of `file` up to and including its last newline (0 if it has none).
fn complete_lines_len(file: &mut File, len: u64) -> std::io::Result<u64> {
    let mut end = len;
    let mut buf = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(i) = memchr::memrchr(b'\n', chunk) {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

#[derive(Serialize)]
struct DeadLine<'a> {
    source: &'a str,
    position: u64,
    reason: &'a str,
    raw: std::borrow::Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_hex: Option<String>,
}

/// Renders a dead letter as one JSON line; raw bytes that are not UTF-8 are also kept in hex.
pub fn dead_letter_json(d: &DeadLetter) -> String {
    let raw_hex =
        std::str::from_utf8(&d.raw).is_err().then(|| d.raw.iter().map(|b| format!("{b:02x}")).collect());
    let line = DeadLine {
        source: &d.source,
        position: d.position,
        reason: &d.reason,
        raw: String::from_utf8_lossy(&d.raw),
        raw_hex,
    };
    serde_json::to_string(&line).unwrap_or_default()
}

/// Renders a late event as one JSON line with names resolved.
pub fn late_json(l: &LateEvent, dict: &Dictionary) -> String {
    serde_json::json!({
        "device": dict.device_name(l.event.device).as_ref(),
        "metric": dict.metric_name(l.event.metric).as_ref(),
        "ts": l.event.ts,
        "value": l.event.value,
        "seq": l.event.seq,
        "watermark": l.watermark,
    })
    .to_string()
}

/// A JSON-lines file shared by the workers of a process.
#[derive(Debug)]
pub struct LineFile {
    path: PathBuf,
    out: BufWriter<File>,
}

impl LineFile {
    /// Creates (truncates) `path`.
    pub fn create(path: &Path) -> Result<Self, Error> {
        let file = File::create(path).map_err(|e| Error::io(path, e))?;
        Ok(LineFile { path: path.to_path_buf(), out: BufWriter::new(file) })
    }

    /// Appends a line.
    pub fn write_line(&mut self, line: &str) -> Result<(), Error> {
        writeln!(self.out, "{line}").map_err(|e| Error::io(&self.path, e))
    }

    /// Flushes.
    pub fn flush(&mut self) -> Result<(), Error> {
        self.out.flush().map_err(|e| Error::io(&self.path, e))
    }
}
