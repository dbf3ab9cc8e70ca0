//! Per-topic configuration: partitions, durability, compression, segment
//! size, retention and compaction.

use serde::{Deserialize, Serialize};

use crate::error::LogError;

/// When appended data is forced to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum FsyncPolicy {
    /// Every append is followed by `fdatasync` before it returns: an
    /// acknowledged append survives a crash of the process or the machine.
    Always,
    /// A background flusher syncs each partition that has new data every
    /// `interval_ms`; the durable watermark moves after each sync.
    Interval {
        /// Milliseconds between syncs.
        interval_ms: u64,
    },
    /// The log never syncs; the operating system writes pages back in its
    /// own time. The durable watermark then follows the written data, so
    /// only choose this where the upstream can replay what a machine crash
    /// loses.
    #[default]
    Never,
}

impl FsyncPolicy {
    /// The default used by pipelines: sync every 100 ms.
    pub const fn interval(ms: u64) -> Self {
        FsyncPolicy::Interval { interval_ms: ms }
    }
}

/// Compression of batch payloads. Headers stay uncompressed so a batch can
/// be located, checked and skipped without decompressing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// Stored as encoded.
    #[default]
    None,
    /// LZ4 block format (lz4_flex, size-prepended).
    Lz4,
    /// Zstandard at level 1.
    Zstd,
}

impl Compression {
    pub(crate) fn code(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Lz4 => 1,
            Compression::Zstd => 2,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Compression::None),
            1 => Some(Compression::Lz4),
            2 => Some(Compression::Zstd),
            _ => None,
        }
    }
}

/// What happens to old data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Cleanup {
    /// Whole sealed segments are deleted by size and age retention.
    #[default]
    Delete,
    /// Sealed segments are rewritten to keep only the latest record of each
    /// key; tombstones (null values) are dropped after
    /// `delete_retention_ms`. Records must have keys.
    Compact,
}

/// Configuration of one topic. Stored beside its data as `topic.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopicConfig {
    /// Number of partitions; fixed when the topic is created.
    pub partitions: u32,
    /// Durability policy.
    pub fsync: FsyncPolicy,
    /// Batch compression.
    pub compression: Compression,
    /// A segment is sealed and a new one started once it holds this many
    /// bytes (a single larger batch still gets its own segment).
    pub segment_bytes: u64,
    /// A segment is also sealed when its first batch is older than this,
    /// so age retention can delete it; `None` means never by age.
    pub segment_ms: Option<u64>,
    /// Delete the oldest sealed segments while a partition holds more than
    /// this many bytes. `None`: unlimited.
    pub retention_bytes: Option<u64>,
    /// Delete sealed segments whose newest record is older than this.
    /// `None`: forever.
    pub retention_ms: Option<u64>,
    /// Delete retention or compaction.
    pub cleanup: Cleanup,
    /// How long a tombstone outlives compaction of its segment, so that
    /// consumers that are behind still see the delete.
    pub delete_retention_ms: u64,
    /// An offset index entry is written after at least this many bytes.
    pub index_interval_bytes: u32,
}

/// Largest segment we allow: positions in the index are 32-bit.
pub const MAX_SEGMENT_BYTES: u64 = 1 << 31;

impl Default for TopicConfig {
    fn default() -> Self {
        Self {
            partitions: 1,
            fsync: FsyncPolicy::interval(100),
            compression: Compression::None,
            segment_bytes: 128 * 1024 * 1024,
            segment_ms: Some(7 * 24 * 3600 * 1000),
            retention_bytes: None,
            retention_ms: None,
            cleanup: Cleanup::Delete,
            delete_retention_ms: 24 * 3600 * 1000,
            index_interval_bytes: 4096,
        }
    }
}

impl TopicConfig {
    /// Checks the values that would make the log misbehave.
    pub fn validate(&self) -> Result<(), LogError> {
        let bad = |reason: String| Err(LogError::InvalidConfig { reason });
        if self.partitions == 0 {
            return bad("partitions must be at least 1".into());
        }
        if self.segment_bytes < 1024 || self.segment_bytes > MAX_SEGMENT_BYTES {
            return bad(format!(
                "segment_bytes must be between 1024 and {MAX_SEGMENT_BYTES}, got {}",
                self.segment_bytes
            ));
        }
        if let FsyncPolicy::Interval { interval_ms: 0 } = self.fsync {
            return bad("fsync interval_ms must be at least 1".into());
        }
        if self.segment_ms == Some(0) {
            return bad("segment_ms must be at least 1".into());
        }
        Ok(())
    }
}
