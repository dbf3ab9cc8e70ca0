//! `tributary-core`: the vocabulary every other Tributary crate shares.
//!
//! It stays small on purpose: types and contracts only, no I/O. The log,
//! the schema registry, connectors and sinks depend on it; it depends on
//! nothing of ours.

pub mod changes;
pub mod convert;
pub mod event;
pub mod offsets;
pub mod pattern;
pub mod render;
pub mod sink;
pub mod telemetry;
pub mod transform;

pub use event::{
    ChangeEvent, Column, ColumnType, Datum, NumericSpecial, Op, Position, SnapshotFlag, SourceInfo,
    TableSchema, TransactionInfo,
};
pub use offsets::{ConsumerOffset, OffsetStore, OffsetStoreError, TopicPartition};
pub use sink::{Sink, SinkError, SinkRecord};
