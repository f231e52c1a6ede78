//! `sensorflow bridge`: an MQTT subscription forwarded to a Kafka topic, at least once.
//!
//! Messages are taken in batches (up to `batch` messages or `linger`), produced to Kafka keyed
//! by device (so one device's events stay in order in one partition), and acknowledged to the
//! MQTT broker only after Kafka has confirmed delivery of the whole batch. If the bridge dies
//! in between, the broker re-delivers the unacknowledged messages to the same persistent
//! session; the engine drops the resulting duplicates by (device, seq). Oversized messages and
//! messages whose topic does not match the template go to the dead-letter file with a reason
//! and are acknowledged (a poison message must not block the stream).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{Client, Publish, QoS};
use sensorflow_operators::DeadLetter;

use crate::connectors::kafka::{ensure_topic, KafkaProducer};
use crate::connectors::mqtt::session::{Flow, Handover, Session, SessionHandler};
use crate::connectors::mqtt::{options, TopicTemplate, MAX_PAYLOAD};
use crate::connectors::ConnectorError;
use crate::sinks::Diverted;
use crate::Error;

/// Bridge settings.
#[derive(Clone, Debug)]
pub struct BridgeConfig {
    /// MQTT broker `host:port`.
    pub mqtt: String,
    /// MQTT topic filter.
    pub filter: String,
    /// Optional topic pattern naming device and metric (`sensors/{device}/{metric}`).
    pub template: Option<String>,
    /// Kafka bootstrap servers.
    pub kafka: String,
    /// Kafka topic.
    pub topic: String,
    /// Partitions to create the topic with if missing.
    pub partitions: i32,
    /// MQTT client id (the persistent session's name).
    pub client_id: String,
    /// Messages per Kafka batch.
    pub batch: usize,
    /// Longest wait to fill a batch.
    pub linger: Duration,
    /// Dead-letter file (JSON lines); stderr if unset.
    pub dead_letters: Option<PathBuf>,
    /// Exit after nothing has arrived for this long (tests and one-off transfers).
    pub until_idle: Option<Duration>,
    /// Print counters this often.
    pub report_every: Duration,
    /// Set once the broker has confirmed the subscription (messages published before that
    /// reach the bridge only if its persistent session already existed).
    pub subscribed: Arc<AtomicBool>,
}

impl BridgeConfig {
    /// A bridge from `filter` on `mqtt` to `topic` on `kafka` with the defaults.
    pub fn new(mqtt: &str, filter: &str, kafka: &str, topic: &str) -> Self {
        BridgeConfig {
            mqtt: mqtt.into(),
            filter: filter.into(),
            template: None,
            kafka: kafka.into(),
            topic: topic.into(),
            partitions: 4,
            client_id: "sensorflow-bridge".into(),
            batch: 5000,
            linger: Duration::from_millis(5),
            dead_letters: None,
            until_idle: None,
            report_every: Duration::from_secs(10),
            subscribed: Arc::default(),
        }
    }
}

/// What a bridge did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BridgeStats {
    /// MQTT messages received (including re-deliveries).
    pub received: u64,
    /// Messages produced to Kafka and confirmed.
    pub forwarded: u64,
    /// Messages sent to the dead-letter output.
    pub dead_lettered: u64,
    /// Kafka batches confirmed.
    pub batches: u64,
    /// Batches that had to be produced again after a Kafka error.
    pub retried_batches: u64,
    /// MQTT connection errors (each followed by a reconnect).
    pub mqtt_errors: u64,
}

impl std::fmt::Display for BridgeStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "received {}, forwarded {}, dead-lettered {}, batches {}, retried batches {}, mqtt errors {}",
            self.received,
            self.forwarded,
            self.dead_lettered,
            self.batches,
            self.retried_batches,
            self.mqtt_errors
        )
    }
}

enum Incoming {
    Message(Box<Publish>),
    ConnectionError,
}

/// Runs the bridge until `stop` is set (or it has been idle for `until_idle`).
pub fn run_bridge(cfg: &BridgeConfig, stop: Arc<AtomicBool>) -> Result<BridgeStats, Error> {
    ensure_topic(&cfg.kafka, &cfg.topic, cfg.partitions)?;
    let mut producer = KafkaProducer::new(&cfg.kafka, &cfg.topic)?;
    let mut dead = Diverted::new(cfg.dead_letters.as_deref(), "bridge: dead letter", u64::MAX)?;
    let template = cfg.template.as_deref().map(TopicTemplate::new);
    let mut opts = options(&cfg.mqtt, &cfg.client_id, true)?;
    opts.set_manual_acks(true);
    let (tx, rx) = sync_channel::<Incoming>(cfg.batch.max(1) * 4);
    let forwarder = Forwarder {
        filter: cfg.filter.clone(),
        handover: Handover::new(tx, 10_000),
        subscribed: cfg.subscribed.clone(),
    };
    let session = Session::start(opts, 8192, "bridge: mqtt", "bridge-mqtt", forwarder)?;
    let client = session.client();

    let mut stats = BridgeStats::default();
    let mut batch: Vec<Publish> = Vec::with_capacity(cfg.batch);
    let mut last_message = Instant::now();
    let mut last_report = Instant::now();
    let started = Instant::now();
    let mut key = Vec::with_capacity(64);
    let mut unacked: VecDeque<Publish> = VecDeque::new();
    while !stop.load(Ordering::Relaxed) {
        fill(&rx, &mut batch, cfg, &mut stats);
        if batch.is_empty() {
            if cfg.until_idle.is_some_and(|idle| last_message.elapsed() >= idle) {
                break;
            }
        } else {
            last_message = Instant::now();
            forward(&mut batch, &mut producer, template.as_ref(), &mut dead, &mut key, &mut stats)?;
            unacked.extend(batch.drain(..));
        }
        // Acks go out through the network thread; never block on them (that thread may itself
        // be waiting for us to take messages). A lost ack only means a re-delivery.
        while let Some(p) = unacked.front() {
            match client.try_ack(p) {
                Ok(()) => {
                    unacked.pop_front();
                }
                Err(_) => break,
            }
        }
        if last_report.elapsed() >= cfg.report_every {
            last_report = Instant::now();
            let rate = stats.forwarded as f64 / started.elapsed().as_secs_f64().max(1e-9);
            tracing::info!("bridge: {stats} ({rate:.0} msg/s)");
        }
    }
    dead.flush()?;
    drop(session);
    Ok(stats)
}

/// The bridge's side of the MQTT session: hands messages over a bounded channel without ever
/// blocking on it, so the acknowledgements the bridge queues keep flowing out.
struct Forwarder {
    filter: String,
    handover: Handover<Incoming>,
    subscribed: Arc<AtomicBool>,
}

impl SessionHandler for Forwarder {
    fn ready(&mut self) -> Flow {
        self.handover.drain()
    }

    fn connected(&mut self, client: &Client) -> Flow {
        // Subscribe on every connection, even when the broker kept the session: a
        // connection that dropped between CONNECT and SUBSCRIBE leaves a session
        // without the subscription. Subscribing again changes nothing otherwise.
        match client.try_subscribe(self.filter.as_str(), QoS::AtLeastOnce) {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Stop,
        }
    }

    fn message(&mut self, p: Publish) -> Flow {
        self.handover.push(Incoming::Message(Box::new(p)));
        Flow::Continue
    }

    fn subscribed(&mut self) {
        self.subscribed.store(true, Ordering::Relaxed);
    }

    fn connection_lost(&mut self) {
        self.handover.push(Incoming::ConnectionError);
    }
}

fn fill(rx: &Receiver<Incoming>, batch: &mut Vec<Publish>, cfg: &BridgeConfig, stats: &mut BridgeStats) {
    let deadline = Instant::now() + cfg.linger.max(Duration::from_millis(1));
    let first_wait = Duration::from_millis(50);
    while batch.len() < cfg.batch {
        let wait =
            if batch.is_empty() { first_wait } else { deadline.saturating_duration_since(Instant::now()) };
        match rx.recv_timeout(wait) {
            Ok(Incoming::Message(p)) => {
                stats.received += 1;
                batch.push(*p);
            }
            Ok(Incoming::ConnectionError) => stats.mqtt_errors += 1,
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Produces a batch and waits until Kafka has confirmed all of it, retrying on errors.
fn forward(
    batch: &mut [Publish],
    producer: &mut KafkaProducer,
    template: Option<&TopicTemplate>,
    dead: &mut Diverted,
    key: &mut Vec<u8>,
    stats: &mut BridgeStats,
) -> Result<(), Error> {
    let mut attempt = 0u32;
    loop {
        let mut produced = 0u64;
        let mut dead_now = 0u64;
        for p in batch.iter() {
            let reason = if p.payload.len() > MAX_PAYLOAD {
                Some(format!("payload of {} bytes is over the {MAX_PAYLOAD}-byte limit", p.payload.len()))
            } else {
                match template.map(|t| t.extract(&p.topic)) {
                    Some(None) => Some(format!("topic {:?} does not match the topic template", p.topic)),
                    _ => None,
                }
            };
            if let Some(reason) = reason {
                if attempt == 0 {
                    dead_now += 1;
                    dead.dead_letter(&DeadLetter::new(&format!("mqtt:{}", p.topic), 0, reason, &p.payload))?;
                }
                continue;
            }
            let payload = match template.and_then(|t| t.extract(&p.topic)) {
                Some((d, m)) if !contains(&p.payload, b"\"device\"") => {
                    crate::connectors::mqtt::with_topic_names(&p.payload, d, m)
                        .unwrap_or_else(|| p.payload.to_vec())
                }
                _ => p.payload.to_vec(),
            };
            device_key(&p.topic, &payload, template, key);
            producer.send(key, &payload)?;
            produced += 1;
        }
        stats.dead_lettered += dead_now;
        match producer.flush(Duration::from_secs(30)) {
            Ok(()) => {
                stats.forwarded += produced;
                stats.batches += 1;
                return Ok(());
            }
            Err(e) => {
                attempt += 1;
                stats.retried_batches += 1;
                producer.deliveries.failed.store(0, Ordering::Relaxed);
                if attempt >= 10 {
                    return Err(Error::Connector(ConnectorError::broker(format!(
                        "bridge: giving up after {attempt} attempts: {e}"
                    ))));
                }
                tracing::warn!("bridge: {e}; producing the batch again (attempt {attempt})");
                std::thread::sleep(Duration::from_millis(200 * u64::from(attempt)));
            }
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
}

/// The Kafka key of a message: its device, from the topic template or the payload's
/// `"device":"…"` field; the MQTT topic if neither names one.
fn device_key(topic: &str, payload: &[u8], template: Option<&TopicTemplate>, key: &mut Vec<u8>) {
    key.clear();
    if let Some(Some((Some(d), _))) = template.map(|t| t.extract(topic)) {
        key.extend_from_slice(d.as_bytes());
        return;
    }
    const FIELD: &[u8] = b"\"device\":\"";
    if let Some(i) = memchr::memmem::find(payload, FIELD) {
        let rest = &payload[i + FIELD.len()..];
        if let Some(end) = memchr::memchr(b'"', rest) {
            key.extend_from_slice(&rest[..end]);
            return;
        }
    }
    key.extend_from_slice(topic.as_bytes());
}
