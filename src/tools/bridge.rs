//! `sensorflow bridge`: an MQTT subscription forwarded to a Kafka topic, at least once, in
//! real time.
//!
//! Each message is produced to Kafka as soon as it arrives, keyed by device (so one device's
//! events stay in order in one partition), through an idempotent producer (which keeps that
//! order with several requests in flight) with a 20 ms linger; batches form by bytes and time
//! inside the producer. A message is acknowledged to the MQTT broker once Kafka's delivery
//! report for it (and for every message received before it) has come back, so the
//! acknowledgements go out in the order the messages came in. If the bridge dies in between,
//! the broker re-delivers the unacknowledged messages to the same persistent session; the
//! engine drops the resulting duplicates by (device, seq). A re-delivery of a message the bridge
//! still has on its way (after a reconnect) is skipped: the original's acknowledgement covers
//! it. Oversized messages and messages whose topic does not match the template go to the
//! dead-letter file with a reason and are acknowledged once written (a poison message must not
//! block the stream). A message Kafka finally refuses
//! (after librdkafka's own retries for `message.timeout.ms`) is produced again, up to 10
//! times; a device's order holds unless that happens.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;
use rumqttc::{Client, Publish, QoS};
use sensorflow_operators::runtime::probe;
use sensorflow_operators::{lock, DeadLetter};

use crate::connectors::kafka::{client, ensure_topic, kafka_err};
use crate::connectors::mqtt::session::{Flow, Handover, Session, SessionHandler};
use crate::connectors::mqtt::{options, TopicTemplate, MAX_PAYLOAD};
use crate::connectors::ConnectorError;
use crate::sinks::Diverted;
use crate::Error;

/// Most bytes of messages on their way to Kafka at once (besides `max_in_flight` messages).
const MAX_IN_FLIGHT_BYTES: usize = 64 << 20;

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
    /// Most messages produced and not yet acknowledged by Kafka (and at most 64 MiB of them);
    /// past it the bridge stops taking messages (the MQTT broker then holds them).
    pub max_in_flight: usize,
    /// How long the producer waits to fill a request (`linger.ms`).
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
    /// Messages received so far, readable while the bridge runs.
    pub received: Arc<AtomicU64>,
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
            max_in_flight: 100_000,
            linger: Duration::from_millis(20),
            dead_letters: None,
            until_idle: None,
            report_every: Duration::from_secs(10),
            subscribed: Arc::default(),
            received: Arc::default(),
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
    /// Messages produced again after Kafka refused them.
    pub retried: u64,
    /// MQTT connection errors (each followed by a reconnect).
    pub mqtt_errors: u64,
    /// Most messages in flight (received, not yet acknowledged to MQTT) at once.
    pub peak_in_flight: u64,
    /// Re-deliveries of messages still on their way to Kafka, not produced twice.
    pub redeliveries_skipped: u64,
}

impl std::fmt::Display for BridgeStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "received {}, forwarded {}, dead-lettered {}, retried {}, mqtt errors {}, peak in flight {}, \
             re-deliveries skipped {}",
            self.received,
            self.forwarded,
            self.dead_lettered,
            self.retried,
            self.mqtt_errors,
            self.peak_in_flight,
            self.redeliveries_skipped
        )
    }
}

enum Incoming {
    Message(Box<Publish>),
    ConnectionError,
}

/// A message between its arrival and its MQTT acknowledgement.
struct InFlight {
    publish: Publish,
    /// Kafka has it (or it was dead-lettered).
    done: bool,
    /// Times Kafka refused it.
    failures: u32,
    /// The Kafka key and payload, kept to produce again after a refusal.
    record: Option<(Vec<u8>, Vec<u8>)>,
}

/// Delivery reports, collected while the producer is polled: (message number, delivered).
#[derive(Default)]
struct Reports {
    done: Mutex<Vec<(u64, bool)>>,
}

struct ReportContext(Arc<Reports>);

impl ClientContext for ReportContext {}

impl ProducerContext for ReportContext {
    type DeliveryOpaque = Box<u64>;
    fn delivery(&self, result: &DeliveryResult<'_>, number: Box<u64>) {
        let ok = match result {
            Ok(m) => {
                if probe::active() {
                    if let Some(ts) = m.payload().and_then(json_ts) {
                        probe::record(probe::Hop::KafkaAcked, ts, 1);
                    }
                }
                true
            }
            Err((e, _)) => {
                tracing::warn!("bridge: kafka refused a message: {e}");
                false
            }
        };
        lock(&self.0.done).push((*number, ok));
    }
}

/// Runs the bridge until `stop` is set (or it has been idle for `until_idle`).
pub fn run_bridge(cfg: &BridgeConfig, stop: Arc<AtomicBool>) -> Result<BridgeStats, Error> {
    ensure_topic(&cfg.kafka, &cfg.topic, cfg.partitions)?;
    let reports = Arc::new(Reports::default());
    let producer: BaseProducer<ReportContext> = client(&cfg.kafka)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", format!("{}", cfg.linger.as_secs_f64() * 1000.0))
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .set("message.timeout.ms", "60000")
        .create_with_context(ReportContext(reports.clone()))
        .map_err(|e| kafka_err("creating the bridge's producer", e))?;
    let mut dead = Diverted::new(cfg.dead_letters.as_deref(), "bridge: dead letter", u64::MAX)?;
    let template = cfg.template.as_deref().map(TopicTemplate::new);
    let mut opts = options(&cfg.mqtt, &cfg.client_id, true)?;
    opts.set_manual_acks(true);
    let (tx, rx) = sync_channel::<Incoming>(16_384);
    let forwarder = Forwarder {
        filter: cfg.filter.clone(),
        handover: Handover::new(tx, 10_000),
        subscribed: cfg.subscribed.clone(),
    };
    let session = Session::start(opts, 8192, "bridge: mqtt", "bridge-mqtt", forwarder)?;
    let client = session.client();

    let mut stats = BridgeStats::default();
    let mut flight = Flight { queue: VecDeque::new(), first: 0 };
    let mut last_message = Instant::now();
    let mut last_report = Instant::now();
    let started = Instant::now();
    let mut done = Vec::new();
    let mut acks = 0usize;
    let mut arrived = Vec::with_capacity(4096);
    let mut in_flight_bytes = 0usize;
    let mut dead_unflushed = false;
    // Packet ids of the messages received and not yet acknowledged.
    let mut unacked: std::collections::HashSet<u16> = std::collections::HashSet::new();
    // Refused messages waiting to be produced again: (when, message number), in time order.
    let mut retries: VecDeque<(Instant, u64)> = VecDeque::new();
    while !stop.load(Ordering::Relaxed) {
        // Take what has arrived, waiting for the first message up to 1 ms while messages are on
        // their way to Kafka (their reports are taken below; an acknowledgement to MQTT may wait
        // that long, a message never does: it is produced as soon as it arrives), 50 ms otherwise.
        // librdkafka's own waits are in whole milliseconds: a shorter poll would spin.
        let room = if in_flight_bytes >= MAX_IN_FLIGHT_BYTES {
            0
        } else {
            cfg.max_in_flight.max(1).saturating_sub(flight.queue.len())
        };
        let wait = if flight.queue.is_empty() { Duration::from_millis(50) } else { Duration::from_millis(1) };
        if room == 0 {
            // Full: wait for Kafka's reports instead (the MQTT broker holds the rest).
            producer.poll(Duration::from_millis(1));
        }
        take(&rx, room.min(4096), wait, &mut stats, &mut arrived);
        let took = arrived.len();
        cfg.received.fetch_add(took as u64, Ordering::Relaxed);
        for p in arrived.drain(..) {
            // A re-delivery (after a reconnect) of a message still on its way: the original's
            // acknowledgement covers it; acknowledging the packet id twice could acknowledge a
            // newer message that reuses it.
            if p.dup && p.qos != QoS::AtMostOnce && unacked.contains(&p.pkid) {
                stats.redeliveries_skipped += 1;
                continue;
            }
            if p.qos != QoS::AtMostOnce {
                unacked.insert(p.pkid);
            }
            let number = flight.first + flight.queue.len() as u64;
            let mut entry = InFlight { publish: p, done: false, failures: 0, record: None };
            match classify(&entry.publish, template.as_ref()) {
                Err(reason) => {
                    stats.dead_lettered += 1;
                    dead.dead_letter(&DeadLetter::new(
                        &format!("mqtt:{}", entry.publish.topic),
                        0,
                        reason,
                        &entry.publish.payload,
                    ))?;
                    dead_unflushed = true;
                    entry.done = true;
                }
                Ok((key, payload)) => {
                    produce(&producer, &cfg.topic, &key, &payload, number)?;
                    in_flight_bytes += key.len() + payload.len();
                    entry.record = Some((key, payload));
                    // Only the packet id is needed to acknowledge: the copy above is kept.
                    entry.publish.payload = Default::default();
                }
            }
            flight.queue.push_back(entry);
        }
        if took > 0 {
            last_message = Instant::now();
        } else if flight.queue.is_empty() && cfg.until_idle.is_some_and(|idle| last_message.elapsed() >= idle)
        {
            break;
        }
        stats.peak_in_flight = stats.peak_in_flight.max(flight.queue.len() as u64);
        // One poll serves at most one event (one produce request's reports): serve them all.
        loop {
            let before = lock(&reports.done).len();
            producer.poll(Duration::ZERO);
            if lock(&reports.done).len() == before {
                break;
            }
        }
        std::mem::swap(&mut done, &mut *lock(&reports.done));
        for (number, ok) in done.drain(..) {
            let Some(entry) = flight.get(number) else { continue };
            if ok {
                entry.done = true;
                if let Some((key, payload)) = entry.record.take() {
                    in_flight_bytes -= key.len() + payload.len();
                }
                stats.forwarded += 1;
            } else {
                entry.failures += 1;
                stats.retried += 1;
                if entry.failures >= 10 {
                    return Err(Error::Connector(ConnectorError::broker(format!(
                        "bridge: kafka refused a message {} times; giving up",
                        entry.failures
                    ))));
                }
                // Produced again after a back-off, without holding up the rest (the network
                // thread must keep being served, or the broker drops the session).
                let due = Instant::now() + Duration::from_millis(200 * u64::from(entry.failures));
                retries.push_back((due, number));
            }
        }
        while retries.front().is_some_and(|(due, _)| *due <= Instant::now()) {
            let Some((_, number)) = retries.pop_front() else { break };
            if let Some(InFlight { record: Some((key, payload)), .. }) = flight.get(number) {
                produce(&producer, &cfg.topic, key, payload, number)?;
            }
        }
        // Acknowledge, in arrival order, every message Kafka has. Acks go out through the
        // network thread; never block on it (it may itself be waiting for us to take messages).
        // A lost ack only means a re-delivery.
        while acks < flight.queue.len() && flight.queue[acks].done {
            acks += 1;
        }
        if acks > 0 && dead_unflushed {
            // A dead letter is acknowledged only once it is written.
            dead.flush()?;
            dead_unflushed = false;
        }
        while acks > 0 {
            let Some(front) = flight.queue.front() else { break };
            if client.try_ack(&front.publish).is_err() {
                break;
            }
            unacked.remove(&front.publish.pkid);
            flight.queue.pop_front();
            flight.first += 1;
            acks -= 1;
        }
        if last_report.elapsed() >= cfg.report_every {
            last_report = Instant::now();
            let rate = stats.forwarded as f64 / started.elapsed().as_secs_f64().max(1e-9);
            tracing::info!("bridge: {stats} ({rate:.0} msg/s)");
        }
    }
    let _ = producer.flush(Duration::from_secs(10));
    dead.flush()?;
    drop(session);
    Ok(stats)
}

/// Messages received and not yet acknowledged to MQTT, numbered from `first`.
struct Flight {
    queue: VecDeque<InFlight>,
    first: u64,
}

impl Flight {
    fn get(&mut self, number: u64) -> Option<&mut InFlight> {
        let i = usize::try_from(number.checked_sub(self.first)?).ok()?;
        self.queue.get_mut(i)
    }
}

/// Takes up to `room` messages into `arrived` (waiting up to `wait` for the first).
fn take(
    rx: &Receiver<Incoming>,
    room: usize,
    wait: Duration,
    stats: &mut BridgeStats,
    arrived: &mut Vec<Publish>,
) {
    while arrived.len() < room {
        let next = if arrived.is_empty() && !wait.is_zero() {
            rx.recv_timeout(wait)
        } else {
            rx.try_recv().map_err(|e| match e {
                std::sync::mpsc::TryRecvError::Empty => RecvTimeoutError::Timeout,
                std::sync::mpsc::TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
            })
        };
        match next {
            Ok(Incoming::Message(p)) => {
                stats.received += 1;
                arrived.push(*p);
            }
            Ok(Incoming::ConnectionError) => stats.mqtt_errors += 1,
            Err(_) => break,
        }
    }
}

/// The Kafka key and payload of a message, or why it goes to the dead letters.
fn classify(p: &Publish, template: Option<&TopicTemplate>) -> Result<(Vec<u8>, Vec<u8>), String> {
    if p.payload.len() > MAX_PAYLOAD {
        return Err(format!("payload of {} bytes is over the {MAX_PAYLOAD}-byte limit", p.payload.len()));
    }
    let names = match template.map(|t| t.extract(&p.topic)) {
        Some(None) => return Err(format!("topic {:?} does not match the topic template", p.topic)),
        Some(Some(names)) => Some(names),
        None => None,
    };
    let payload = match names {
        Some((d, m)) if !contains(&p.payload, b"\"device\"") => {
            crate::connectors::mqtt::with_topic_names(&p.payload, d, m).unwrap_or_else(|| p.payload.to_vec())
        }
        _ => p.payload.to_vec(),
    };
    let mut key = Vec::with_capacity(32);
    device_key(&p.topic, &payload, template, &mut key);
    Ok((key, payload))
}

/// Queues one message for Kafka, waiting while the producer's local queue is full.
fn produce(
    producer: &BaseProducer<ReportContext>,
    topic: &str,
    key: &[u8],
    payload: &[u8],
    number: u64,
) -> Result<(), Error> {
    let mut record = BaseRecord::with_opaque_to(topic, Box::new(number)).key(key).payload(payload);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r))
                if Instant::now() < deadline =>
            {
                record = r;
                producer.poll(Duration::from_millis(5));
            }
            Err((e, _)) => return Err(Error::Connector(kafka_err("bridge: producing", e))),
        }
    }
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
        if probe::active() {
            if let Some(ts) = json_ts(&p.payload) {
                probe::record(probe::Hop::BridgeReceived, ts, 1);
            }
        }
        self.handover.push(Incoming::Message(Box::new(p)));
        // Hand over at once: the bridge produces each message as it arrives.
        self.handover.drain()
    }

    fn subscribed(&mut self) {
        self.subscribed.store(true, Ordering::Relaxed);
    }

    fn connection_lost(&mut self) {
        self.handover.push(Incoming::ConnectionError);
    }
}

/// The `"ts":<integer>` field of a JSON payload (for the latency probes only).
fn json_ts(payload: &[u8]) -> Option<u64> {
    const FIELD: &[u8] = b"\"ts\":";
    let i = memchr::memmem::find(payload, FIELD)? + FIELD.len();
    let digits = payload[i..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&payload[i..i + digits]).ok()?.parse().ok()
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
