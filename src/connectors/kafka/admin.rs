//! Topics: names, partition counts, creation, and the keys a topic already holds.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::{client, kafka_err};
use crate::connectors::ConnectorError;

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

/// Number of partitions of `topic`, waiting up to `wait` for it to appear.
pub fn partition_count(brokers: &str, topic: &str, wait: Duration) -> Result<i32, ConnectorError> {
    check_topic(topic)?;
    let consumer: BaseConsumer = client(brokers)
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
            return Err(ConnectorError::broker(format!("kafka: {last} (waited {wait:?})")));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Creates `topic` with `partitions` partitions if it does not exist.
pub fn ensure_topic(brokers: &str, topic: &str, partitions: i32) -> Result<(), ConnectorError> {
    if partition_count(brokers, topic, Duration::ZERO).is_ok() {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> =
        client(brokers).create().map_err(|e| kafka_err("creating an admin client", e))?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ConnectorError::System(format!("kafka: admin runtime: {e}")))?;
    let results =
        rt.block_on(admin.create_topics(&[new], &opts)).map_err(|e| kafka_err("creating topic", e))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => {
                return Err(ConnectorError::Broker {
                    message: format!("kafka: creating topic {t}: {code}"),
                    retryable: false,
                })
            }
        }
    }
    partition_count(brokers, topic, Duration::from_secs(10)).map(|_| ())
}

/// Reads every key already in `topic` (to de-duplicate a keyed sink across restarts): reads
/// from the start until nothing new arrives for `idle`.
pub fn existing_keys(brokers: &str, topic: &str, idle: Duration) -> Result<Vec<Vec<u8>>, ConnectorError> {
    let partitions = match partition_count(brokers, topic, Duration::ZERO) {
        Ok(n) => n,
        Err(_) => return Ok(Vec::new()),
    };
    let consumer: BaseConsumer = client(brokers)
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
