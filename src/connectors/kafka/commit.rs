//! Offsets committed at the run's durable frontier, and the frontier a restarted run resumes
//! from (see the module docs of [`super`]).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use sensorflow_operators::lock;

use super::{client, kafka_err, partition_count, KafkaSourceConfig};
use crate::connectors::{Committer, ConnectorError};

/// The output frontier a previous run of this consumer group had reached when it last
/// committed: every alert below it was written then. A restarted run re-reads from the
/// committed offsets (a recovery horizon before that frontier) to rebuild state, and drops
/// alerts below it instead of emitting them again from partly rebuilt state. 0 when the
/// group has no commits.
pub fn resume_frontier(cfg: &KafkaSourceConfig) -> Result<u64, ConnectorError> {
    let partitions = partition_count(&cfg.brokers, &cfg.topic, Duration::from_millis(cfg.wait_for_topic_ms))?;
    let consumer: BaseConsumer = client(&cfg.brokers)
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

/// Offsets read but not yet committed: (offset after a batch, largest event time up to it).
#[derive(Debug, Default)]
pub(super) struct Pending {
    pub(super) batches: VecDeque<(i64, u64)>,
    pub(super) committed: i64,
}

/// Commits one partition's offsets.
pub(super) struct PartitionCommitter {
    pub(super) consumer: Arc<BaseConsumer>,
    pub(super) topic: String,
    pub(super) partition: i32,
    pub(super) horizon: u64,
    pub(super) pending: Arc<Mutex<Pending>>,
}

impl std::fmt::Debug for PartitionCommitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PartitionCommitter({}/{})", self.topic, self.partition)
    }
}

impl Committer for PartitionCommitter {
    fn commit(&self, durable: u64, mark: u64, last: bool) {
        let offset = {
            let mut pending = lock(&self.pending);
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
