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

//!
//! The parts: `source` (the partition readers), `commit` (offsets at the durable frontier and
//! the resume point), `producer` (the keyed producer and the alert/event [`KafkaSink`]),
//! `admin` (topics and partitions). Every client is built by [`client`].

mod admin;
mod commit;
mod producer;
mod source;

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use serde::{Deserialize, Serialize};

pub use admin::{check_topic, ensure_topic, existing_keys, partition_count};
pub use commit::resume_frontier;
pub use producer::{Counting, Deliveries, KafkaProducer, KafkaSink};
pub use source::{kafka_readers, parse_payload};

use crate::connectors::ConnectorError;

/// Largest message payload accepted; larger ones are dead-lettered.
pub const MAX_MESSAGE: usize = 1 << 20;

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

/// The one place a Kafka client's configuration starts: every consumer, producer and admin
/// client of sensorflow talks to `brokers` through one of these.
pub fn client(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    c
}

/// A Kafka failure as a connector error. A client that cannot be created or configured is a
/// setting to fix (no retry helps); anything else the broker or the network said may pass.
pub(crate) fn kafka_err(what: &str, e: KafkaError) -> ConnectorError {
    let retryable = !matches!(e, KafkaError::ClientCreation(_) | KafkaError::ClientConfig(..));
    ConnectorError::Broker { message: format!("kafka: {what}: {e}"), retryable }
}
