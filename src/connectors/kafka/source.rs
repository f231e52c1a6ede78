//! The partition readers: partition `p` is read by global worker `p % peers`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use sensorflow_operators::runtime::probe;
use sensorflow_operators::{lock, DeadLetter, PartitionReader, Poll, SourceBatch, SourceError};

use super::commit::{PartitionCommitter, Pending};
use super::{client, kafka_err, partition_count, KafkaSourceConfig, MAX_MESSAGE};
use crate::connectors::parse::EventBuilder;
use crate::connectors::text::json::parse_json;
use crate::connectors::{Committer, ConnectorError, Opened, ReaderContext, UntilIdle};

/// Messages read per partition per poll.
const BATCH: usize = 4096;

/// Opens this worker's partitions of the topic.
pub fn kafka_readers(cfg: &KafkaSourceConfig, ctx: &ReaderContext) -> Result<Opened, ConnectorError> {
    let partitions = partition_count(&cfg.brokers, &cfg.topic, Duration::from_millis(cfg.wait_for_topic_ms))?;
    let mut readers: Vec<Box<dyn PartitionReader>> = Vec::new();
    let mut committers: Vec<Arc<dyn Committer>> = Vec::new();
    for p in (0..partitions).filter(|p| *p as usize % ctx.peers == ctx.index) {
        let consumer: BaseConsumer = client(&cfg.brokers)
            .set("group.id", &cfg.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", "10")
            // librdkafka prefetches while the engine holds a partition back (flow control):
            // at most 8 MiB or 16,384 messages per partition wait in its queue.
            .set("queued.max.messages.kbytes", "8192")
            .set("queued.min.messages", "16384")
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
            until_idle: UntilIdle::new(cfg.until_idle_ms),
        }));
    }
    Ok((readers, committers))
}

/// One partition of a topic.
struct KafkaReader {
    name: String,
    consumer: Arc<BaseConsumer>,
    builder: EventBuilder,
    pending: Arc<Mutex<Pending>>,
    max_ts: u64,
    until_idle: UntilIdle,
}

impl PartitionReader for KafkaReader {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn poll(&mut self, out: &mut SourceBatch) -> Result<Poll, SourceError> {
        let mut next_offset = None;
        let first = out.events.len();
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
            if let Some(ts) = parse_payload(&self.name, pos, msg.payload(), &mut self.builder, out) {
                self.max_ts = self.max_ts.max(ts);
            }
        }
        if let Some(mut r) = probe::recorder(probe::Hop::EngineRead) {
            out.events[first..].iter().for_each(|e| r.record(e.ts, 1));
        }
        let Some(next) = next_offset else { return Ok(self.until_idle.nothing()) };
        lock(&self.pending).batches.push_back((next, self.max_ts));
        Ok(self.until_idle.arrived())
    }
}

/// Turns one Kafka message into events and dead letters: one JSON object per line; an empty
/// or oversized message is one dead letter. Returns the newest event time it held.
pub fn parse_payload(
    source: &str,
    pos: u64,
    payload: Option<&[u8]>,
    builder: &mut EventBuilder,
    out: &mut SourceBatch,
) -> Option<u64> {
    let mut max_ts = None;
    match payload {
        None | Some([]) => out.dead.push(DeadLetter::new(source, pos, "empty message", &[])),
        // Only blanks: a record all the same, never dropped unseen (found by fuzzing).
        Some(p) if p.iter().all(u8::is_ascii_whitespace) => {
            out.dead.push(DeadLetter::new(source, pos, "empty message (only whitespace)", p))
        }
        Some(p) if p.len() > MAX_MESSAGE => out.dead.push(DeadLetter::new(
            source,
            pos,
            format!("message of {} bytes is over the {MAX_MESSAGE}-byte limit", p.len()),
            p,
        )),
        // A message holds one event or several, one JSON object per line.
        Some(p) => {
            for line in p.split(|&b| b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace)) {
                match parse_json(line, builder) {
                    Ok(e) => {
                        max_ts = max_ts.max(Some(e.ts));
                        out.events.push(e);
                    }
                    Err(reason) => out.dead.push(DeadLetter::new(source, pos, reason, line)),
                }
            }
        }
    }
    max_ts
}
