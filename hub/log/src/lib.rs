//! `tributary-log`: the central, partitioned, replayable log.
//!
//! A [`Log`] holds topics; a [`Topic`] has a fixed number of
//! [`Partition`]s; a partition is a directory of segment files of
//! checksummed [batches](batch), with sparse offset and time indexes.
//! Appends are batched and get consecutive offsets; reads hand out the
//! stored batches as written. Durability follows the topic's
//! [`FsyncPolicy`], and each partition reports its durable watermark so
//! that sources acknowledge upstream positions only for stored records.

pub mod batch;
pub mod config;
pub mod error;
mod index;
#[allow(clippy::module_inception)]
mod log;
pub mod metrics;
pub mod offsets;
pub mod partition;
pub mod segment;
pub mod topic;

pub use batch::{Batch, BatchBuilder, RecordIn, RecordView, Records};
pub use config::{Cleanup, Compression, FsyncPolicy, TopicConfig};
pub use error::{LogError, Result};
pub use log::{Log, LogOptions};
pub use offsets::SledOffsetStore;
pub use partition::{Appended, CompactionStats, Partition};
pub use segment::{Recovery, now_ms};
pub use topic::{Route, Topic, murmur2, partition_for_key};
