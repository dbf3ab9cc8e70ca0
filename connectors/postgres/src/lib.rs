//! `tributary-connector-postgres`: the PostgreSQL source.
//!
//! - [`pgoutput`]: decoding of logical replication messages (v1, v2);
//! - [`types`]: type OIDs to portable column types, text values to datums;
//! - [`replication`]: the replication connection and its CopyBoth stream;
//! - [`events`]: pgoutput rows to change events;
//! - [`snapshot`]: the initial snapshot: parallel, chunked, resumable;
//! - [`tls`]: sslmode disable/prefer/require/verify-full with rustls;
//! - [`spill`]: streamed transactions kept on disk until they commit;
//! - [`source`]: the streaming source, slot to log with durable acknowledgement;
//! - [`catalog`]: table shapes (columns, nullability, keys, custom types)
//!   read from the catalog.

pub mod catalog;
pub mod events;
pub mod pgoutput;
pub mod replication;
pub mod snapshot;
pub mod source;
pub mod spill;
pub mod tls;
pub mod types;
