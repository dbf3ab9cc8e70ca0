//! Errors of the PostgreSQL source, and which of them a new connection
//! may cure.

use tributary_capture::writer::WriteError;
use tributary_capture::{CaptureError, ErrorKind};
use tributary_postgres_conn::ConnectError;

use crate::catalog::CatalogError;
use crate::events::EventError;
use crate::pgoutput;
use crate::replication::ReplicationError;
use crate::spill::SpillError;

/// Errors of the streaming source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// SQL on the normal connection failed.
    #[error("{what}: {source}")]
    Sql {
        /// What we were doing.
        what: String,
        /// Cause.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The server is not set up for logical replication.
    #[error(
        "wal_level is {0}, logical replication needs logical: run ALTER SYSTEM SET wal_level = logical; and restart PostgreSQL"
    )]
    WalLevel(String),
    /// The replication connection failed.
    #[error(transparent)]
    Replication(ReplicationError),
    /// The user may not replicate.
    #[error(
        "user {user} may not start replication: {message}. Fix: ALTER ROLE {user} REPLICATION; (and allow it in pg_hba.conf)"
    )]
    NoReplicationPrivilege {
        /// The user.
        user: String,
        /// The server's words.
        message: String,
    },
    /// Another consumer holds the slot.
    #[error(
        "replication slot {slot} is in use by another connection: {message}. Fix: stop the other consumer, or SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '{slot}';"
    )]
    SlotActive {
        /// The slot.
        slot: String,
        /// The server's words.
        message: String,
    },
    /// The existing publication lacks a configured table.
    #[error(
        "publication {publication} does not include table {table}. Fix: ALTER PUBLICATION {publication} ADD TABLE {table};"
    )]
    NotPublished {
        /// The publication.
        publication: String,
        /// `schema.table`.
        table: String,
    },
    /// The server ended the replication stream without being asked to
    /// (it is shutting down or restarting).
    #[error("PostgreSQL ended the replication stream of slot {0}")]
    StreamEnded(String),
    /// A pgoutput message did not decode.
    #[error(transparent)]
    Decode(#[from] pgoutput::DecodeError),
    /// The catalog could not describe a table.
    #[error(transparent)]
    Catalog(Box<CatalogError>),
    /// A row could not become an event.
    #[error(transparent)]
    Event(#[from] EventError),
    /// Writing to the log failed.
    #[error(transparent)]
    Write(Box<WriteError>),
    /// The capture engine failed.
    #[error(transparent)]
    Capture(Box<CaptureError>),
    /// A change for a relation we were not told about.
    #[error("change for relation {0} before its Relation message")]
    UnknownRelation(u32),
    /// The snapshot could not be read.
    #[error("snapshot: {0}")]
    Snapshot(String),
    /// A thread reading the snapshot panicked or was cancelled.
    #[error("a snapshot worker failed: {0}")]
    SnapshotWorker(#[source] tokio::task::JoinError),
    /// A file of the source's own state (its spill directory).
    #[error("source state {path}: {source}")]
    State {
        /// File or directory.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The snapshot ledger could not be read or stored.
    #[error(transparent)]
    Ledger(#[from] tributary_capture::LedgerError),
    /// The SQL connection could not be opened.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The slot that held this source's position is gone or invalidated,
    /// after a snapshot: the changes in between are lost.
    #[error(
        "replication slot {slot} {how}, but this source already read a snapshot and streamed from it: the changes in between are lost. Fix: set snapshot mode when_needed to take a new snapshot automatically, or delete {state} to start over"
    )]
    SlotLost {
        /// The slot.
        slot: String,
        /// "no longer exists" or "was invalidated ...".
        how: String,
        /// The source's snapshot state file.
        state: String,
    },
    /// A streamed transaction's spill file failed.
    #[error(transparent)]
    Spill(#[from] SpillError),
    /// The server sent something out of order.
    #[error("protocol: {0}")]
    Protocol(String),
    /// Deriving the Avro schema failed.
    #[error(transparent)]
    Schema(#[from] tributary_schemas::avro::SchemaError),
    /// The list of quarantined tables could not be read or stored.
    #[error(transparent)]
    Quarantine(#[from] tributary_capture::QuarantineError),
    /// A row that cannot be captured could not be written to the
    /// dead-letter topic.
    #[error(transparent)]
    DeadLetter(Box<tributary_capture::DeadLetterError>),
}

impl From<ReplicationError> for SourceError {
    fn from(e: ReplicationError) -> Self {
        SourceError::Replication(e)
    }
}

/// SQLSTATEs after which a new connection may succeed: connection
/// exceptions, the server shutting down or starting up, too many clients.
fn transient_code(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("57P") || code == "53300"
}

/// Whether a SQL error is a lost or refused connection.
fn pg_transient(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.as_db_error() {
        Some(d) => transient_code(d.code().code()),
        None => std::error::Error::source(e)
            .is_some_and(|c| c.downcast_ref::<std::io::Error>().is_some()),
    }
}

impl SourceError {
    /// What the error means for the source as a whole, once the engine
    /// gave up on it: a broken connection or a slot another session still
    /// holds may heal ([`ErrorKind::Transient`]); a lost slot is
    /// [`ErrorKind::PositionLost`]; anything else would fail the same way
    /// again ([`ErrorKind::Fatal`]).
    pub fn kind(&self) -> ErrorKind {
        if self.is_transient() || self.is_slot_active() {
            ErrorKind::Transient
        } else if matches!(self, SourceError::SlotLost { .. }) {
            ErrorKind::PositionLost
        } else {
            ErrorKind::Fatal
        }
    }

    /// Whether the error is about one table (a value it cannot
    /// represent, a schema the registry refuses, a shape it cannot
    /// read): what `on_error: quarantine` sets the table aside for.
    pub fn is_about_table(&self) -> bool {
        match self {
            SourceError::Event(_) | SourceError::Schema(_) => true,
            SourceError::Catalog(_) => !self.is_transient(),
            SourceError::Write(w) => w.is_about_table(),
            SourceError::Capture(c) => {
                matches!(&**c, CaptureError::Write(w) if w.is_about_table())
            }
            _ => false,
        }
    }

    /// Whether reconnecting may help: the connection broke, or the
    /// server is shutting down or starting up.
    pub fn is_transient(&self) -> bool {
        match self {
            SourceError::Replication(ReplicationError::Io { .. }) => true,
            SourceError::Replication(ReplicationError::Server { code, .. }) => transient_code(code),
            SourceError::Sql { source, .. }
            | SourceError::Connect(ConnectError::Connect { source, .. }) => pg_transient(source),
            SourceError::StreamEnded(_) => true,
            SourceError::Catalog(c) => {
                matches!(&**c, CatalogError::Query { source, .. } if pg_transient(source))
            }
            _ => false,
        }
    }

    pub(crate) fn is_slot_active(&self) -> bool {
        matches!(self, SourceError::SlotActive { .. })
    }
}

impl From<CatalogError> for SourceError {
    fn from(e: CatalogError) -> Self {
        SourceError::Catalog(Box::new(e))
    }
}

impl From<CaptureError> for SourceError {
    fn from(e: CaptureError) -> Self {
        SourceError::Capture(Box::new(e))
    }
}

impl From<WriteError> for SourceError {
    fn from(e: WriteError) -> Self {
        SourceError::Write(Box::new(e))
    }
}

pub(crate) type Result<T, E = SourceError> = std::result::Result<T, E>;

pub(crate) fn sql(what: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> SourceError {
    let what = what.into();
    move |source| SourceError::Sql { what, source }
}
