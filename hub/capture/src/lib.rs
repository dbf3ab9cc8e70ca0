//! `tributary-capture`: the capture engine under every source, and the
//! one write path into the log.
//!
//! - [`source`]: the [`ChangeSource`] seam and its acknowledgement
//!   contract;
//! - [`capture`]: [`Capture`], what the engine gives a source for one
//!   session: table shapes, transactions, events, commits, durable
//!   positions (appends happen on a log-writer thread);
//! - [`run`](mod@run): reconnects with backoff, a new snapshot when the
//!   position is lost, stop on what would repeat ([`ErrorKind`]);
//! - [`writer`]: the validated write path (Avro in Confluent's wire
//!   format, transforms, partitioning, replay skip), used by sources,
//!   `produce` and the hub's Produce;
//! - [`snapshot`]: snapshot progress (rows, rate, ETA per table) on a
//!   terminal or in the log, for every source;
//! - [`ledger`]: per-table snapshot bookkeeping: which tables were read,
//!   as of which position, recorded only once their rows are durable;
//! - [`position`]: the record position and truncate barrier headers, one
//!   encoder and one parser for the writer and every reader.
//!
//! # Adding a database
//!
//! A connector keeps only its protocol. To add one:
//!
//! 1. Pick the **position** the source resumes from (`type Position`),
//!    and a [`StreamKey`] per transaction: fixed-width big-endian parts
//!    that sort in stream order (PostgreSQL: the commit LSN; MySQL: the
//!    binlog file number and the transaction's first event offset). A
//!    replay after a crash must give a transaction the same key.
//! 2. Write `session`: connect; take the snapshot [`SnapshotMode`] asks
//!    for (register each table with [`Capture::register`], append rows
//!    with `capture.writer().append`, flush the log before recording a
//!    table as done); call [`Capture::streaming`]; then per upstream
//!    transaction: [`Capture::begin`], [`Capture::push`] per change,
//!    [`Capture::boundary`] after each upstream message,
//!    [`Capture::commit`] with the position after it. Acknowledge
//!    upstream only what [`Capture::durable`] returns (or store it in
//!    [`ChangeSource::on_durable`]). Return `Ok` once `stop` is true.
//! 3. Write `classify`: which errors are [`ErrorKind::Transient`]
//!    (connection lost, server restarting), which mean the stored
//!    position is gone ([`ErrorKind::PositionLost`]), the rest fatal.
//! 4. Run it with [`run()`]: `run(&mut source, &engine, stop)`, with an
//!    [`Engine`] holding the log, the writer and the source's progress.
//!
//! ```text
//! source (protocol) -> Capture (transactions, chunks) -> writer thread
//!   -> EventWriter (Avro, transforms, partitions) -> log -> durable marks
//!   -> Capture::durable -> source acknowledges upstream
//! ```

pub mod capture;
pub mod config;
pub mod error;
pub mod ledger;
pub mod position;
pub mod quarantine;
pub mod run;
pub mod snapshot;
pub mod source;
pub mod writer;

pub use capture::{AckHook, CHUNK, Capture, Order, WriterJob};
pub use config::{Backoff, Engine, Heartbeat, RunStats, Settings, SnapshotMode};
pub use error::{CaptureError, ErrorKind};
pub use ledger::{LedgerError, SnapshotLedger, TableRead, write_durably};
pub use position::{BARRIER_HEADER, POSITION_HEADER, RecordMarks, RecordPosition, StreamKey};
pub use quarantine::{
    DeadLetter, DeadLetterError, OnError, Quarantine, QuarantineError, Quarantined,
};
pub use run::run;
pub use snapshot::{SnapshotProgress, TableProgress};
pub use source::ChangeSource;
pub use writer::{EncodedRecord, EventWriter, WriteError, Written, append_records};
