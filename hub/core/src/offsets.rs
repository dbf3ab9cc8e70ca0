//! Consumer offsets: how far a consumer group has durably processed a
//! partition, and the contract of the store that keeps them.

use std::fmt;

/// One partition of one topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition number, from 0.
    pub partition: u32,
}

impl TopicPartition {
    /// A topic-partition pair.
    pub fn new(topic: impl Into<String>, partition: u32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// A committed consumer offset.
///
/// `offset` is the offset of the *next* record the group will process:
/// every record below it has been applied durably by the consumer. This is
/// the same convention as Kafka's committed offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerOffset {
    /// Consumer group.
    pub group: String,
    /// Where.
    pub tp: TopicPartition,
    /// Next offset to process.
    pub offset: u64,
}

/// Errors of an offset store.
#[derive(Debug, thiserror::Error)]
pub enum OffsetStoreError {
    /// The backing storage failed.
    #[error("offset store {what} failed")]
    Storage {
        /// What was being done.
        what: &'static str,
        /// The storage error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A stored value could not be read back.
    #[error("offset store holds a malformed entry for key {key:?}")]
    Malformed {
        /// The raw key, for diagnosis.
        key: String,
    },
}

/// Where consumer groups keep their committed offsets.
///
/// Contract: when `commit` returns `Ok`, the offset is durable (it survives
/// a process crash and a power loss of the machine, within what the
/// filesystem promises for fsync). `get` after a restart returns the last
/// committed value. Commits for one (group, topic, partition) are expected
/// to come from one consumer at a time; the store does not order
/// concurrent commits of the same key.
pub trait OffsetStore: Send + Sync {
    /// Stores `offset` for `group` on `tp`, durably, before returning.
    fn commit(&self, group: &str, tp: &TopicPartition, offset: u64)
    -> Result<(), OffsetStoreError>;

    /// The committed offset of `group` on `tp`, if any.
    fn get(&self, group: &str, tp: &TopicPartition) -> Result<Option<u64>, OffsetStoreError>;

    /// Every committed offset, optionally of one group only, sorted by
    /// group, topic and partition.
    fn list(&self, group: Option<&str>) -> Result<Vec<ConsumerOffset>, OffsetStoreError>;

    /// Removes the committed offset of `group` on `tp`; returns whether one
    /// existed.
    fn delete(&self, group: &str, tp: &TopicPartition) -> Result<bool, OffsetStoreError>;
}
