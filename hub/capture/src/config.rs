//! What the engine needs of a source's configuration, and what it counts.

use std::sync::Arc;
use std::time::Duration;

use tributary_core::telemetry::SourceProgress;
use tributary_log::{Log, TopicConfig};

use crate::ledger::{LedgerError, SnapshotLedger};
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
    /// How often the source proves it is alive when its tables are idle
    /// (see [`Heartbeat`]); `None` turns heartbeats off.
    pub heartbeat: Option<Duration>,
    /// How often snapshot progress is logged when stderr is not a
    /// terminal (on a terminal a live display is redrawn instead).
    pub progress_interval: Duration,
    /// What to do with a table the source cannot capture.
    pub on_error: crate::quarantine::OnError,
}

/// When a source's heartbeat is due: every [`Settings::heartbeat`]
/// (the first at once), never when heartbeats are off. What a heartbeat
/// is belongs to the source: PostgreSQL commits a logical message that
/// comes back through the stream (so an idle slot still advances),
/// MySQL asks the server to send heartbeat events at this interval.
#[derive(Debug)]
pub struct Heartbeat(Option<tokio::time::Interval>);

impl Heartbeat {
    /// A schedule for `every`; late ticks are delayed, not bunched.
    pub fn new(every: Option<Duration>) -> Self {
        Self(every.map(|d| {
            let mut i = tokio::time::interval(d);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        }))
    }

    /// Resolves when the next heartbeat is due; never when off.
    pub async fn due(&mut self) {
        match &mut self.0 {
            Some(i) => {
                i.tick().await;
            }
            None => std::future::pending().await,
        }
    }
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
    /// Where the source keeps its state: `sources/<name>` under the log's
    /// directory.
    pub fn state_dir(&self) -> std::path::PathBuf {
        crate::quarantine::state_dir(self.log.dir(), &self.name)
    }

    /// The source's snapshot ledger, stored as `file` in its
    /// [`state_dir`](Self::state_dir).
    pub fn ledger<P: Clone + serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        file: &str,
    ) -> Result<SnapshotLedger<P>, LedgerError> {
        SnapshotLedger::load(self.state_dir().join(file), self.log.clone())
    }

    /// The source's quarantined tables, stored in its
    /// [`state_dir`](Self::state_dir).
    pub fn quarantine(
        &self,
    ) -> Result<crate::quarantine::Quarantine, crate::quarantine::QuarantineError> {
        crate::quarantine::Quarantine::load(&self.state_dir())
    }

    /// The heartbeat schedule of the source's settings.
    pub fn heartbeat(&self) -> Heartbeat {
        Heartbeat::new(self.settings.heartbeat)
    }

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
