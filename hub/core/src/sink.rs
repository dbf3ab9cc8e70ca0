//! The sink contract: how the runtime hands records to a sink and when
//! a consumer offset may move.
//!
//! 1. At start the runtime asks [`Sink::stored_offsets`]. A sink whose
//!    target can store offsets in the same transaction as the data (a
//!    database, Redis `MULTI`) returns what it stored: the runtime resumes
//!    exactly there (exactly-once effect). Others return `None` and the
//!    runtime resumes from the consumer group's committed offsets.
//! 2. The runtime calls [`Sink::apply`] with a batch: records of one or
//!    more partitions, each partition's in log order, at most `batch_size`.
//!    `apply` returns once the target holds the whole batch durably; a
//!    sink that stores offsets stores, in the same transaction, for each
//!    partition in the batch the offset after its last record.
//! 3. Only then does the runtime commit the consumer offsets past the
//!    batch. A crash between 2 and 3 replays the batch: sinks that do not
//!    store offsets must apply idempotently (upserts and deletes by key),
//!    so delivery is at-least-once and the effect exactly-once.
//! 4. A record the target refuses ([`SinkError::Record`]): the records
//!    before it are applied (and their offsets stored, if the sink stores
//!    offsets); the pipeline's `on_error` decides what happens to it
//!    (`stop`: the sink pauses at the offset of that record; `dlq`: it is
//!    written with error headers to `<sink>.dlq`; `skip`: it is counted and
//!    logged). Then the rest of the batch is applied.
//! 5. [`SinkError::Transient`]: nothing of the batch counts as applied;
//!    the runtime retries it with backoff. [`SinkError::Fatal`]: the sink
//!    stops, at its committed offset, with the error in status.
//! 6. After `tributary offsets reset` of the sink's group, a sink that
//!    stores offsets is told with [`Sink::reset_offsets`] at its next
//!    start, before any `apply`: it stores the new offsets in its target
//!    (durably, replacing what it had for those partitions), and the
//!    runtime resumes from them. Storing the same reset twice (a crash
//!    before the runtime cleared it) must give the same result.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::event::{ChangeEvent, Datum, TableSchema};
use crate::offsets::TopicPartition;

/// A boxed future, so sinks can be used as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Offsets a sink stored in its target: for each partition, the offset
/// after the last record it applied.
pub type StoredOffsets = Vec<(TopicPartition, u64)>;

/// A record as a sink gets it: where it is in the log and what it says.
#[derive(Debug, Clone)]
pub struct SinkRecord {
    /// Topic.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: u32,
    /// Offset in the partition.
    pub offset: u64,
    /// Append time, ms since the Unix epoch.
    pub timestamp: i64,
    /// The row's key columns, in key order (`None` for keyless records:
    /// truncates, tables keyed by REPLICA IDENTITY FULL).
    pub key: Option<Vec<Datum>>,
    /// The change.
    pub event: ChangeEvent,
    /// The table's shape as the record was written.
    pub table: Arc<TableSchema>,
}

/// What caused a sink error, shared so the error stays cheap to clone
/// (the tower stack clones requests and errors while it retries).
pub type Cause = Arc<dyn std::error::Error + Send + Sync>;

/// Why a sink could not apply a batch.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SinkError {
    /// The target refuses record `index` of the batch (a value it cannot
    /// hold, a constraint); the records before it are applied.
    #[error("record {index} of the batch: {reason}")]
    Record {
        /// Its index in the batch.
        index: usize,
        /// The target's words.
        reason: String,
    },
    /// The target is unreachable or busy: retry the whole batch.
    #[error("{message}")]
    Transient {
        /// What failed, and the target's words.
        message: String,
        /// The error behind it, when there is one.
        #[source]
        cause: Option<Cause>,
    },
    /// Retrying will not help (configuration, privileges).
    #[error("{message}")]
    Fatal {
        /// What failed, and the target's words.
        message: String,
        /// The error behind it, when there is one.
        #[source]
        cause: Option<Cause>,
    },
    /// The target no longer holds what the sink applied (its stored
    /// offsets are gone: a cache restarted without persistence, a
    /// `FLUSHALL`): the worker starts again from the offsets the target
    /// now reports, replaying what it lost.
    #[error("{what}")]
    Rewind {
        /// What the sink found missing.
        what: String,
    },
}

impl SinkError {
    /// A transient error described by `message` alone (the target's
    /// words, already rendered).
    pub fn transient(message: impl Into<String>) -> Self {
        SinkError::Transient {
            message: message.into(),
            cause: None,
        }
    }

    /// A transient error: `what: cause`, the cause kept as the source.
    pub fn transient_from(
        what: impl std::fmt::Display,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        SinkError::Transient {
            message: format!("{what}: {cause}"),
            cause: Some(Arc::new(cause)),
        }
    }

    /// The same error with `cause` kept as its source (a transient or
    /// fatal error whose message the sink rendered from the cause).
    pub fn with_cause(self, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        match self {
            SinkError::Transient { message, .. } => SinkError::Transient {
                message,
                cause: Some(Arc::new(cause)),
            },
            SinkError::Fatal { message, .. } => SinkError::Fatal {
                message,
                cause: Some(Arc::new(cause)),
            },
            other => other,
        }
    }

    /// A fatal error described by `message` alone.
    pub fn fatal(message: impl Into<String>) -> Self {
        SinkError::Fatal {
            message: message.into(),
            cause: None,
        }
    }

    /// A fatal error: `what: cause`, the cause kept as the source.
    pub fn fatal_from(
        what: impl std::fmt::Display,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        SinkError::Fatal {
            message: format!("{what}: {cause}"),
            cause: Some(Arc::new(cause)),
        }
    }
}

/// A sink: see the module documentation for the contract.
pub trait Sink: Send {
    /// Offsets stored in the target with the data, or `None` if the target
    /// does not store them.
    fn stored_offsets(&mut self) -> BoxFuture<'_, Result<Option<StoredOffsets>, SinkError>>;

    /// Applies `batch`; returns once the target holds it durably.
    fn apply<'a>(&'a mut self, batch: &'a [SinkRecord]) -> BoxFuture<'a, Result<(), SinkError>>;

    /// Stores `offsets` in the target as the offsets to resume from (an
    /// offsets reset), durably. Only called on sinks whose
    /// [`stored_offsets`](Self::stored_offsets) is `Some`; a sink that
    /// stores offsets and cannot reset them refuses, so a reset is never
    /// silently ignored.
    fn reset_offsets<'a>(
        &'a mut self,
        offsets: &'a [(TopicPartition, u64)],
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        let n = offsets.len();
        Box::pin(async move {
            Err(SinkError::fatal(format!(
                "this sink cannot store an offsets reset ({n} partitions): \
                 clear its target's stored offsets by hand"
            )))
        })
    }
}
