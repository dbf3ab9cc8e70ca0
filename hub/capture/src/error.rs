//! The engine's own errors, and the kinds every source's errors fall
//! into: what decides between reconnecting, taking a new snapshot and
//! stopping.

use crate::writer::WriteError;

/// What the engine does after a source's session failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The connection broke or the server is restarting: reconnect
    /// with backoff; the stored position holds what is durable.
    Transient,
    /// The server no longer has the stream from the stored position
    /// (purged binlog, lost slot): with snapshot mode `when_needed` the
    /// source forgets its position and takes a new snapshot at once;
    /// otherwise it stops.
    PositionLost,
    /// Anything that would fail the same way again: stop, so the
    /// runtime reports it (it restarts the source with its own, longer
    /// backoff).
    Fatal,
}

/// Why the capture engine failed.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// Encoding or appending failed.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// The log failed outside an append (a flush).
    #[error("log: {0}")]
    Log(#[from] tributary_log::LogError),
    /// The log-writer thread stopped; its own error is reported instead
    /// where it is known.
    #[error("the log writer stopped")]
    WriterStopped,
    /// A source pushed an event without opening a transaction.
    #[error("an event of topic {topic} was pushed outside a transaction")]
    NoTransaction {
        /// The event's topic.
        topic: String,
    },
    /// The log-writer thread panicked.
    #[error("the log writer panicked: {0}")]
    WriterPanicked(#[source] tokio::task::JoinError),
    /// A source's own job on the writer thread failed (recording its
    /// schema history, storing its position).
    #[error(transparent)]
    Source(Box<dyn std::error::Error + Send + Sync>),
}
