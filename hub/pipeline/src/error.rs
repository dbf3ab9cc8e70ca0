//! The runtime's errors: why a sink worker's or a source's life ended
//! (the supervisor restarts it with backoff and shows the error in
//! status), and why a section could not become a connector.

use tributary_core::{OffsetStoreError, SinkError};
use tributary_log::LogError;
use tributary_schemas::described::DecodeRecordError;

/// Why a sink worker stopped.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The worker was started without its sink.
    #[error("the sink is gone")]
    NoSink,
    /// The sink failed outside a batch (reading its stored offsets).
    #[error(transparent)]
    Sink(SinkError),
    /// The sink could not store an offsets reset.
    #[error("storing the offsets reset in the sink: {0}")]
    Reset(#[source] SinkError),
    /// The target lost what the sink applied: the worker restarts from
    /// what it stores now.
    #[error("{0}; replaying from the target's stored offsets")]
    Rewind(#[source] SinkError),
    /// The log failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The consumer group's offsets failed.
    #[error(transparent)]
    Offsets(#[from] OffsetStoreError),
    /// A record does not decode with its registered schema.
    #[error("{topic}[{partition}]@{offset}: {part}{source}")]
    Decode {
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
        /// Offset.
        offset: u64,
        /// `key: ` for the key, empty for the value.
        part: &'static str,
        /// Why.
        #[source]
        source: DecodeRecordError,
    },
    /// A record to be dead-lettered was removed from the log first.
    #[error("{topic}[{partition}]@{offset}: gone from the log before its dead letter was written")]
    DeadLetterGone {
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
        /// Offset.
        offset: u64,
    },
    /// The sink's section could not become a sink.
    #[error(transparent)]
    Section(#[from] SectionError),
    /// The read-ahead task failed.
    #[error("reading ahead: {0}")]
    ReadAhead(#[source] tokio::task::JoinError),
}

/// Why a `sinks[i]` section could not become a sink (its fields were
/// checked when the file was read; what is left is what the sink itself
/// refuses).
#[derive(Debug, thiserror::Error)]
pub enum SectionError {
    /// The sink refused its configuration.
    #[error(transparent)]
    Sink(#[from] SinkError),
}

/// Why a source's life ended.
#[derive(Debug, thiserror::Error)]
pub enum SourceRunError {
    /// The PostgreSQL source failed.
    #[error(transparent)]
    Postgres(#[from] tributary_connector_postgres::source::SourceError),
    /// The MySQL/MariaDB source failed.
    #[error(transparent)]
    Mysql(#[from] tributary_connector_mysql::source::SourceError),
    /// Its patterns select no table.
    #[error("no table of database {database} matches the source's patterns")]
    NoTables {
        /// The database.
        database: String,
    },
}

impl SourceRunError {
    /// Whether trying again may help: a lost connection, a server
    /// restarting, a table not created yet are
    /// [`ErrorKind::Transient`](tributary_capture::ErrorKind); a lost
    /// position the snapshot mode does not let the source recover from,
    /// and anything that would fail the same way again, are not.
    pub fn kind(&self) -> tributary_capture::ErrorKind {
        match self {
            SourceRunError::Postgres(e) => e.kind(),
            SourceRunError::Mysql(e) => e.kind(),
            SourceRunError::NoTables { .. } => tributary_capture::ErrorKind::Transient,
        }
    }
}

/// What `validate` found wrong with a source's server.
#[derive(Debug, thiserror::Error)]
pub enum ServerCheckError {
    /// The PostgreSQL server failed or refused.
    #[error(transparent)]
    Postgres(#[from] tributary_connector_postgres::source::SourceError),
    /// A query on the PostgreSQL server failed.
    #[error(transparent)]
    Sql(#[from] tokio_postgres::Error),
    /// The MySQL/MariaDB server failed or refused.
    #[error(transparent)]
    Mysql(#[from] tributary_connector_mysql::source::SourceError),
    /// The user may not replicate.
    #[error("user {user} may not replicate. Fix: ALTER ROLE {user} REPLICATION;")]
    NoReplication {
        /// The user.
        user: String,
    },
    /// The MySQL user may not read binlog positions.
    #[error(
        "the user may not read binlog positions ({0}). Fix: GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO <user>; (MariaDB 10.5+: BINLOG MONITOR)"
    )]
    NoBinlogAccess(#[source] mysql_async::Error),
    /// The patterns select no table.
    #[error("no table {where_}matches {patterns}")]
    NoTables {
        /// `of database X ` or empty.
        where_: String,
        /// The patterns, joined.
        patterns: String,
    },
}
