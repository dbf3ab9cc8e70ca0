//! What the engine needs of a source's configuration, and what it counts.

use std::sync::Arc;
use std::time::Duration;

use tributary_core::telemetry::SourceProgress;
use tributary_log::{Log, TopicConfig};

use crate::writer::EventWriter;

/// Exponential backoff: `initial`, doubling up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// First wait.
    pub initial: Duration,
    /// Longest wait.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

/// When a source reads the current rows of its tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotMode {
    /// When the source has no position yet: the rows as of a consistent
    /// point (`op: r`), then the stream from that point.
    Initial,
    /// Never: only changes from the source's first start on.
    Never,
    /// Read the tables, then stop: nothing is streamed.
    InitialOnly,
    /// As `Initial`, and again whenever the server lost the stream from
    /// the stored position (a purged binlog, a removed or invalidated
    /// slot): the changes in between are lost, so a fresh snapshot is the
    /// only way to be complete again.
    WhenNeeded,
}

impl SnapshotMode {
    /// Parses `initial`, `never`, `initial_only` or `when_needed`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "initial" => Self::Initial,
            "never" => Self::Never,
            "initial_only" => Self::InitialOnly,
            "when_needed" => Self::WhenNeeded,
            _ => return None,
        })
    }
}

/// What one source run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Committed transactions received (heartbeats included).
    pub transactions: u64,
    /// Change events written.
    pub events: u64,
    /// Heartbeats that came back through the stream (PostgreSQL).
    pub heartbeats: u64,
    /// DDL statements applied to the schema history (MySQL).
    pub ddl: u64,
    /// Sessions that reached streaming.
    pub sessions: u64,
    /// Reconnections after a lost connection.
    pub reconnects: u64,
    /// Rows read by snapshots.
    pub snapshot_rows: u64,
}

/// What a source's configuration tells the engine.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Configuration of the topics the source creates.
    pub topic_config: TopicConfig,
    /// The source's snapshot mode.
    pub snapshot: SnapshotMode,
    /// Waits between reconnections.
    pub reconnect: Backoff,
    /// How often the engine looks for newly durable positions.
    pub status_interval: Duration,
}

/// The engine's part of a source: where it writes, what it reports, how
/// it reconnects. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Engine {
    /// The source's name (logs, state directory).
    pub name: String,
    /// The log.
    pub log: Log,
    /// The validated write path into it.
    pub writer: Arc<EventWriter>,
    /// Phase and positions, for the hub (outlives the source).
    pub progress: Arc<SourceProgress>,
    /// What the source's configuration says.
    pub settings: Settings,
}

impl Engine {
    /// The engine of source `name` writing through `writer` into `log`,
    /// reporting to a fresh progress (replace it to share one).
    pub fn new(name: &str, log: Log, writer: EventWriter, settings: Settings) -> Self {
        Self {
            name: name.to_string(),
            log,
            writer: Arc::new(writer),
            progress: Arc::default(),
            settings,
        }
    }
}
