//! `tributary-schemas`: change events as Avro, and the schema registry.
//!
//! - [`names`]: database identifiers to Avro names, reversibly;
//! - [`avro`]: the Debezium-shaped envelope schema of a table, and a
//!   direct binary encoder/decoder for it;
//! - [`registry`]: subjects, versions, ids and compatibility, stored in
//!   sled, with a Confluent-compatible HTTP API;
//! - [`wire`]: Confluent's wire format (magic 0, schema id, Avro body).
//!
//! The validated write path into the log is `tributary-capture`'s:
//! schemas know nothing of the log.

pub mod avro;
pub mod described;
pub mod names;
pub mod registry;
pub mod table_json;
pub mod wire;

pub use avro::{Connector, DecodeError, EncodeError, EventSchema, SchemaError};
pub use described::RecordDecoder;
pub use registry::{Compatibility, Registry, RegistryError};
