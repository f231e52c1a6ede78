//! The keyed producer (idempotent delivery counting, back-pressure on a full queue) and the
//! [`KafkaSink`] alerts and simulated events are produced through.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use super::{client, ensure_topic, existing_keys, kafka_err};
use crate::connectors::ConnectorError;
use crate::sinks::{Message, Sink};
use crate::Error;

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
        let producer: BaseProducer<Counting> = client(brokers)
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
            return Err(ConnectorError::broker(format!("kafka: {failed} messages to {} failed", self.topic)));
        }
        Ok(())
    }

    /// Messages queued so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }
}

/// A topic as a [`Sink`]: each line produced under its message's key.
#[derive(Debug)]
pub struct KafkaSink {
    producer: KafkaProducer,
    flush_timeout: Duration,
    /// Keys the topic held at start (for alerts; empty for events).
    existing: HashSet<String>,
}

impl KafkaSink {
    /// The alert sink: creates the topic if needed and reads the keys already in it, so a
    /// restarted run produces none of them twice.
    pub fn alerts(brokers: &str, topic: &str) -> Result<Self, ConnectorError> {
        ensure_topic(brokers, topic, 1)?;
        let keys = existing_keys(brokers, topic, Duration::from_millis(1500))?;
        let existing = keys.into_iter().filter_map(|k| String::from_utf8(k).ok()).collect();
        Ok(KafkaSink {
            producer: KafkaProducer::new(brokers, topic)?,
            flush_timeout: Duration::from_secs(30),
            existing,
        })
    }

    /// A sink for events keyed by device, on a topic created with `partitions` if missing.
    pub fn events(brokers: &str, topic: &str, partitions: i32) -> Result<Self, ConnectorError> {
        ensure_topic(brokers, topic, partitions)?;
        let producer = KafkaProducer::new(brokers, topic)?;
        Ok(KafkaSink { producer, flush_timeout: Duration::from_secs(60), existing: HashSet::new() })
    }
}

impl Sink for KafkaSink {
    fn existing_ids(&mut self) -> Result<HashSet<String>, Error> {
        Ok(std::mem::take(&mut self.existing))
    }

    fn send(&mut self, m: &Message<'_>) -> Result<(), Error> {
        self.producer.send(m.key, m.payload)?;
        // Delivery reports queue up until served; serve them now and then, not per message.
        if self.producer.sent() % 1024 == 0 {
            self.producer.poll();
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Error> {
        Ok(self.producer.flush(self.flush_timeout)?)
    }
}
