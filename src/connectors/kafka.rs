//! Kafka (rdkafka): a source whose partitions are spread over every worker, offsets committed
//! only once the dataflow's durable frontier has passed them, and a keyed producer used by the
//! alert sink, the bridge and the simulator.
//!
//! # Offsets and recovery
//!
//! Partition `p` is read by global worker `p % peers`, with a manual assignment (no group
//! rebalancing: timely is fail-stop, so a lost worker ends the run anyway) and offsets stored
//! in the consumer group `group`. A reader remembers, for each batch, the offset after it and
//! the largest event time read so far. The run calls [`Committer::commit`] with its *durable
//! frontier*: the event time below which every alert, dead letter and late event has been
//! written and flushed. An offset is committed once the largest event time up to it plus the
//! *recovery horizon* is below that frontier. The horizon is how far back in event time the
//! operators' state reaches (windows, rule episodes, the anomaly model's sample window), so a
//! restarted run re-reads enough input to rebuild that state and re-derives the same alerts;
//! the sinks drop the keys they already hold. A crash therefore replays and never loses.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientContext;
use sensorflow_operators::{DeadLetter, PartitionReader, Poll, SourceBatch, SourceError};
use serde::{Deserialize, Serialize};

use super::parse::{parse_json, EventBuilder};
use super::{ConnectorError, ReaderContext};

/// Largest message payload accepted; larger ones are dead-lettered.
pub const MAX_MESSAGE: usize = 1 << 20;
/// Messages read per partition per poll.
const BATCH: usize = 4096;

/// Where a Kafka source reads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceConfig {
    /// Bootstrap servers, `host:port[,host:port]`.
    pub brokers: String,
    /// Topic.
    pub topic: String,
    /// Consumer group the offsets are committed under.
    #[serde(default = "default_group")]
    pub group: String,
    /// Recovery horizon in event-time ms (see the module docs).
    #[serde(default = "default_horizon")]
    pub horizon_ms: u64,
    /// End the run once every partition has had nothing new for this long (ms); a live
    /// deployment leaves it unset.
    #[serde(default)]
    pub until_idle_ms: Option<u64>,
    /// How long to wait for the topic to exist at start-up (ms).
    #[serde(default = "default_wait")]
    pub wait_for_topic_ms: u64,
}

fn default_group() -> String {
    "sensorflow".into()
}
fn default_horizon() -> u64 {
    5 * 60_000
}
fn default_wait() -> u64 {
    30_000
}

impl KafkaSourceConfig {
    /// A source reading `topic` from `brokers` with the defaults.
    pub fn new(brokers: &str, topic: &str) -> Self {
        KafkaSourceConfig {
            brokers: brokers.into(),
            topic: topic.into(),
            group: default_group(),
            horizon_ms: default_horizon(),
            until_idle_ms: None,
            wait_for_topic_ms: default_wait(),
        }
    }
}

/// Commits a source's progress once the run's output has caught up with it.
pub trait Committer: Send + Sync + std::fmt::Debug {
    /// Everything with event time below `durable` (`u64::MAX`: everything) has been written;
    /// `mark` is the frontier to record beside the offsets (see [`resume_frontier`]).
    /// `last` asks for a synchronous commit (the run is ending).
    fn commit(&self, durable: u64, mark: u64, last: bool);
}

/// The output frontier a previous run of this consumer group had reached when it last
/// committed: every alert below it was written then. A restarted run re-reads from the
/// committed offsets (a recovery horizon before that frontier) to rebuild state, and drops
/// alerts below it instead of emitting them again from partly rebuilt state. 0 when the
/// group has no commits.
pub fn resume_frontier(cfg: &KafkaSourceConfig) -> Result<u64, ConnectorError> {
    let partitions = partition_count(&cfg.brokers, &cfg.topic, Duration::from_millis(cfg.wait_for_topic_ms))?;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &cfg.brokers)
        .set("group.id", &cfg.group)
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| kafka_err("creating a consumer", e))?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_range(&cfg.topic, 0, partitions - 1);
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .map_err(|e| kafka_err("reading committed offsets", e))?;
    Ok(committed.elements().iter().filter_map(|e| e.metadata().parse::<u64>().ok()).max().unwrap_or(0))
}

/// Checks a topic name (Kafka's rule: 1–249 of `[a-zA-Z0-9._-]`).
pub fn check_topic(topic: &str) -> Result<(), ConnectorError> {
    let ok = !topic.is_empty()
        && topic.len() <= 249
        && topic.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ConnectorError::Config(format!("kafka: {topic:?} is not a valid topic name")))
    }
}

/// Readers plus the committers that go with them.
pub type Opened = (Vec<Box<dyn PartitionReader>>, Vec<Arc<dyn Committer>>);

fn kafka_err(what: &str, e: KafkaError) -> ConnectorError {
    ConnectorError::Config(format!("kafka: {what}: {e}"))
}

/// Number of partitions of `topic`, waiting up to `wait` for it to appear.
pub fn partition_count(brokers: &str, topic: &str, wait: Duration) -> Result<i32, ConnectorError> {
    check_topic(topic)?;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("allow.auto.create.topics", "false")
        .create()
        .map_err(|e| kafka_err("creating a metadata client", e))?;
    let deadline = Instant::now() + wait;
    loop {
        let last = match consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            Ok(meta) => match meta.topics().iter().find(|t| t.name() == topic) {
                Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
                    return Ok(t.partitions().len() as i32)
                }
                Some(t) => format!("topic {topic} not ready ({:?})", t.error()),
                None => format!("topic {topic} not found"),
            },
            Err(e) => format!("cannot reach {brokers}: {e}"),
        };
        if Instant::now() >= deadline {
            return Err(ConnectorError::Config(format!("kafka: {last} (waited {wait:?})")));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Creates `topic` with `partitions` partitions if it does not exist.
pub fn ensure_topic(brokers: &str, topic: &str, partitions: i32) -> Result<(), ConnectorError> {
    if partition_count(brokers, topic, Duration::ZERO).is_ok() {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(|e| kafka_err("creating an admin client", e))?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ConnectorError::Config(format!("kafka: admin runtime: {e}")))?;
    let results =
        rt.block_on(admin.create_topics(&[new], &opts)).map_err(|e| kafka_err("creating topic", e))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => {
                return Err(ConnectorError::Config(format!("kafka: creating topic {t}: {code}")))
            }
        }
    }
    partition_count(brokers, topic, Duration::from_secs(10)).map(|_| ())
}

/// Opens this worker's partitions of the topic.
pub fn kafka_readers(cfg: &KafkaSourceConfig, ctx: &ReaderContext) -> Result<Opened, ConnectorError> {
    let partitions = partition_count(&cfg.brokers, &cfg.topic, Duration::from_millis(cfg.wait_for_topic_ms))?;
    let mut readers: Vec<Box<dyn PartitionReader>> = Vec::new();
    let mut committers: Vec<Arc<dyn Committer>> = Vec::new();
    for p in (0..partitions).filter(|p| *p as usize % ctx.peers == ctx.index) {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &cfg.brokers)
            .set("group.id", &cfg.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", "10")
            .set("queued.max.messages.kbytes", "65536")
            .create()
            .map_err(|e| kafka_err("creating a consumer", e))?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&cfg.topic, p, Offset::Stored)
            .map_err(|e| kafka_err("building the assignment", e))?;
        consumer.assign(&tpl).map_err(|e| kafka_err("assigning partitions", e))?;
        let consumer = Arc::new(consumer);
        let pending = Arc::new(Mutex::new(Pending::default()));
        committers.push(Arc::new(PartitionCommitter {
            consumer: consumer.clone(),
            topic: cfg.topic.clone(),
            partition: p,
            horizon: cfg.horizon_ms,
            pending: pending.clone(),
        }));
        readers.push(Box::new(KafkaReader {
            name: format!("kafka:{}/{p}", cfg.topic),
            consumer,
            builder: ctx.builder(),
            pending,
            max_ts: 0,
            until_idle: cfg.until_idle_ms.map(Duration::from_millis),
            last_message: Instant::now(),
        }));
    }
    Ok((readers, committers))
}

/// Offsets read but not yet committed: (offset after a batch, largest event time up to it).
#[derive(Debug, Default)]
struct Pending {
    batches: VecDeque<(i64, u64)>,
    committed: i64,
}

/// One partition of a topic.
struct KafkaReader {
    name: String,
    consumer: Arc<BaseConsumer>,
    builder: EventBuilder,
    pending: Arc<Mutex<Pending>>,
    max_ts: u64,
    until_idle: Option<Duration>,
    last_message: Instant,
}

impl PartitionReader for KafkaReader {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn poll(&mut self, out: &mut SourceBatch) -> Result<Poll, SourceError> {
        let mut next_offset = None;
        for _ in 0..BATCH {
            let msg = match self.consumer.poll(Duration::ZERO) {
                None => break,
                Some(Ok(m)) => m,
                // librdkafka retries broker errors itself; they are reported here for information.
                Some(Err(KafkaError::PartitionEOF(_))) => break,
                Some(Err(e)) => {
                    tracing::warn!("{}: {e} (retrying)", self.name);
                    break;
                }
            };
            let offset = msg.offset();
            next_offset = Some(offset + 1);
            let pos = offset.max(0) as u64;
            match msg.payload() {
                None | Some([]) => out.dead.push(DeadLetter::new(&self.name, pos, "empty message", &[])),
                Some(p) if p.len() > MAX_MESSAGE => out.dead.push(DeadLetter::new(
                    &self.name,
                    pos,
                    format!("message of {} bytes is over the {MAX_MESSAGE}-byte limit", p.len()),
                    p,
                )),
                // A message holds one event or several, one JSON object per line.
                Some(p) => {
                    for line in p.split(|&b| b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace)) {
                        match parse_json(line, &mut self.builder) {
                            Ok(e) => {
                                self.max_ts = self.max_ts.max(e.ts);
                                out.events.push(e);
                            }
                            Err(reason) => out.dead.push(DeadLetter::new(&self.name, pos, reason, line)),
                        }
                    }
                }
            }
        }
        let Some(next) = next_offset else {
            return Ok(match self.until_idle {
                Some(idle) if self.last_message.elapsed() >= idle => Poll::Done,
                _ => Poll::Pending,
            });
        };
        self.last_message = Instant::now();
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).batches.push_back((next, self.max_ts));
        Ok(Poll::Ready)
    }
}

/// Commits one partition's offsets.
struct PartitionCommitter {
    consumer: Arc<BaseConsumer>,
    topic: String,
    partition: i32,
    horizon: u64,
    pending: Arc<Mutex<Pending>>,
}

impl std::fmt::Debug for PartitionCommitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PartitionCommitter({}/{})", self.topic, self.partition)
    }
}

impl Committer for PartitionCommitter {
    fn commit(&self, durable: u64, mark: u64, last: bool) {
        let offset = {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            let mut offset = None;
            while let Some(&(next, max_ts)) = pending.batches.front() {
                if durable != u64::MAX && max_ts.saturating_add(self.horizon) >= durable {
                    break;
                }
                offset = Some(next);
                pending.batches.pop_front();
            }
            match offset {
                Some(o) if o > pending.committed => {
                    pending.committed = o;
                    o
                }
                _ => return,
            }
        };
        let mut tpl = TopicPartitionList::new();
        {
            let mut elem = tpl.add_partition(&self.topic, self.partition);
            if elem.set_offset(Offset::Offset(offset)).is_err() {
                return;
            }
            elem.set_metadata(mark.to_string());
        }
        let mode = if last { CommitMode::Sync } else { CommitMode::Async };
        if let Err(e) = self.consumer.commit(&tpl, mode) {
            tracing::error!("kafka: committing {}/{} at {offset}: {e}", self.topic, self.partition);
        }
    }
}

/// Counts delivery reports, so callers can tell when everything sent has landed.
#[derive(Debug, Default)]
pub struct Deliveries {
    /// Messages acknowledged by the broker.
    pub delivered: AtomicU64,
    /// Messages the producer gave up on.
    pub failed: AtomicU64,
}

/// A producer context that counts delivery reports.
#[derive(Debug, Default, Clone)]
pub struct Counting(pub Arc<Deliveries>);

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.0.delivered.fetch_add(1, Ordering::Relaxed),
            Err((e, _)) => {
                tracing::warn!("kafka: delivery failed: {e}");
                self.0.failed.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

/// A keyed producer with delivery counting and back-pressure on a full queue.
pub struct KafkaProducer {
    producer: BaseProducer<Counting>,
    topic: String,
    /// Delivery counters.
    pub deliveries: Arc<Deliveries>,
    sent: u64,
}

impl std::fmt::Debug for KafkaProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KafkaProducer({}, sent {})", self.topic, self.sent)
    }
}

impl KafkaProducer {
    /// A producer for `topic` (idempotent, acks from all replicas, small linger for batching).
    pub fn new(brokers: &str, topic: &str) -> Result<Self, ConnectorError> {
        let deliveries = Arc::new(Deliveries::default());
        let producer: BaseProducer<Counting> = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("linger.ms", "5")
            .set("acks", "all")
            .set("queue.buffering.max.messages", "1000000")
            .set("message.timeout.ms", "60000")
            .create_with_context(Counting(deliveries.clone()))
            .map_err(|e| kafka_err("creating a producer", e))?;
        Ok(KafkaProducer { producer, topic: topic.into(), deliveries, sent: 0 })
    }

    /// Queues one message, waiting while the local queue is full.
    pub fn send(&mut self, key: &[u8], payload: &[u8]) -> Result<(), ConnectorError> {
        let mut record = BaseRecord::to(&self.topic).key(key).payload(payload);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self.producer.send(record) {
                Ok(()) => {
                    self.sent += 1;
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r))
                    if Instant::now() < deadline =>
                {
                    record = r;
                    self.producer.poll(Duration::from_millis(5));
                }
                Err((e, _)) => return Err(kafka_err("producing", e)),
            }
        }
    }

    /// Serves delivery reports without blocking.
    pub fn poll(&self) {
        self.producer.poll(Duration::ZERO);
    }

    /// Waits until everything sent so far is delivered (or has failed).
    pub fn flush(&mut self, timeout: Duration) -> Result<(), ConnectorError> {
        self.producer.flush(timeout).map_err(|e| kafka_err("flushing", e))?;
        let failed = self.deliveries.failed.load(Ordering::Relaxed);
        if failed > 0 {
            return Err(ConnectorError::Config(format!("kafka: {failed} messages to {} failed", self.topic)));
        }
        Ok(())
    }

    /// Messages queued so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }
}

/// Reads every key already in `topic` (to de-duplicate a keyed sink across restarts): reads
/// from the start until nothing new arrives for `idle`.
pub fn existing_keys(brokers: &str, topic: &str, idle: Duration) -> Result<Vec<Vec<u8>>, ConnectorError> {
    let partitions = match partition_count(brokers, topic, Duration::ZERO) {
        Ok(n) => n,
        Err(_) => return Ok(Vec::new()),
    };
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("sensorflow-keys-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .map_err(|e| kafka_err("creating a consumer", e))?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning).map_err(|e| kafka_err("assigning", e))?;
    }
    consumer.assign(&tpl).map_err(|e| kafka_err("assigning", e))?;
    let mut keys = Vec::new();
    let mut last = Instant::now();
    while last.elapsed() < idle {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
            last = Instant::now();
            if let Some(k) = m.key() {
                keys.push(k.to_vec());
            }
        }
    }
    Ok(keys)
}
