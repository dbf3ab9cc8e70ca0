//! `tributary-pipeline`: a pipeline declared in YAML, checked, and run.
//!
//! - [`config`]: the file: strict parsing, `${VAR}` interpolation, errors
//!   that name file, line, column and path;
//! - [`sections`]: `sources[i]` and `sinks[i]`, a type per kind with
//!   exactly its fields;
//! - [`source`] (over [`postgres_source`] and [`mysql_source`]) and
//!   [`targets`]: what a section does: run its source, check its server,
//!   build its sink;
//! - [`runtime`]: supervised tasks for every source, restarted with
//!   backoff, stopped gracefully;
//! - [`telemetry`] and [`metrics`]: what the connectors report while they
//!   run, and the metrics the hub exposes from it.

pub mod config;
pub mod error;
pub mod metrics;
pub mod mysql_source;
pub mod postgres_source;
pub mod runtime;
pub mod sections;
pub mod sink;
pub mod source;
mod stack;
pub mod status;
pub mod targets;
pub mod telemetry;
pub mod topics;

pub use config::{ConfigError, Pipeline, load, parse};
