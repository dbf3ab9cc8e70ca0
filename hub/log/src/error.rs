//! Errors of the log.

use std::path::PathBuf;

/// Everything that can go wrong in the log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What we were doing.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Stored data failed its checksum or framing check where a torn write
    /// cannot explain it (inside a sealed segment, or followed by valid
    /// data). Never skipped: the reader stops here.
    #[error("corrupt log data in {path} at byte {position}: {reason}")]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Byte offset of the bad batch in that file.
        position: u64,
        /// What check failed.
        reason: String,
    },
    /// The requested offset is not in the partition (deleted by retention,
    /// or not yet written).
    #[error(
        "offset {requested} is out of range for {topic}/{partition}: earliest {earliest}, next {next}"
    )]
    OffsetOutOfRange {
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
        /// What was asked for.
        requested: u64,
        /// First offset still stored.
        earliest: u64,
        /// Offset the next append gets.
        next: u64,
    },
    /// No such topic.
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    /// The topic exists with another configuration.
    #[error("topic {0:?} already exists")]
    TopicExists(String),
    /// No such partition.
    #[error("topic {topic:?} has {partitions} partitions, partition {partition} does not exist")]
    UnknownPartition {
        /// Topic.
        topic: String,
        /// Asked for.
        partition: u32,
        /// How many there are.
        partitions: u32,
    },
    /// A topic name that cannot be a directory name.
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName {
        /// The name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// Configuration values that cannot work.
    #[error("invalid topic configuration: {reason}")]
    InvalidConfig {
        /// Why.
        reason: String,
    },
    /// `topic.json` could not be read.
    #[error("cannot read topic metadata {path}: {source}")]
    Metadata {
        /// The file.
        path: PathBuf,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// A compacted topic got a record without a key.
    #[error("topic {topic:?} is compacted: every record needs a key")]
    KeyRequired {
        /// Topic.
        topic: String,
    },
    /// A batch with no records, or larger than a segment may hold.
    #[error("invalid batch: {reason}")]
    InvalidBatch {
        /// Why.
        reason: String,
    },
    /// Compressing or decompressing a batch failed.
    #[error("{codec} {op} failed: {reason}")]
    Codec {
        /// lz4 or zstd.
        codec: &'static str,
        /// compress or decompress.
        op: &'static str,
        /// The codec's message.
        reason: String,
    },
    /// An fsync or write failed earlier; the partition takes no more
    /// appends until it is reopened.
    #[error("{topic}/{partition}: an earlier fsync or write failed; reopen the log to recover")]
    Failed {
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
    },
    /// The consumer offset store failed.
    #[error(transparent)]
    Offsets(#[from] tributary_core::OffsetStoreError),
}

impl LogError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LogError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Shorthand.
pub type Result<T, E = LogError> = std::result::Result<T, E>;
