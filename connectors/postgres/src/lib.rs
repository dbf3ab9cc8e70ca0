//! `tributary-connector-postgres`: the PostgreSQL source.
//!
//! - [`pgoutput`]: decoding of logical replication messages (v1, v2);
//! - [`types`]: type OIDs to portable column types, text values to datums;
//! - [`replication`]: the replication connection and its CopyBoth stream;
//! - [`events`]: pgoutput rows to change events;
//! - [`snapshot`]: the initial snapshot: parallel, chunked, resumable;
//! - [`spill`]: streamed transactions kept on disk until they commit;
//! - [`source`]: the streaming source, slot to log with durable acknowledgement;
//! - [`error`]: the source's errors and which are transient;
//! - [`catalog`]: table shapes (columns, nullability, keys, custom types)
//!   read from the catalog.

pub mod catalog;
pub mod error;
pub mod events;
pub mod pgoutput;
pub mod replication;
pub mod snapshot;
pub mod source;
pub mod spill;
/// TLS (from `tributary-postgres-conn`, shared with the sink).
pub use tributary_postgres_conn::tls;
pub mod types;
