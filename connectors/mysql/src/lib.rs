//! `tributary-connector-mysql`: the MySQL/MariaDB source.
//!
//! - [`source`]: snapshot and binlog stream into the log, positions stored
//!   only for durable records;
//! - [`ddl`]: DDL statements applied to a model of the tables (the schema
//!   history), so rows decode with the shape they had;
//! - [`history`]: that model, persisted in `<source>.schema-history`;
//! - [`binrow`]: binlog row images to datums;
//! - [`value`]: snapshot result values to datums;
//! - [`types`]: column definitions to portable types;
//! - [`position`]: binlog positions, GTID states, the stored position;
//! - [`reread`]: tables taken back from quarantine, read again.

pub mod binrow;
pub mod ddl;
pub mod history;
pub mod position;
pub mod reread;
pub mod source;
pub mod types;
pub mod value;
