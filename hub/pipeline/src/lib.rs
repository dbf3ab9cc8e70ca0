//! `tributary-pipeline`: a pipeline declared in YAML, checked, and run.
//!
//! - [`config`]: the file: strict parsing, `${VAR}` interpolation, errors
//!   that name file, line, column and path;
//! - [`source`]: a `sources[i]` section to a running source (connection,
//!   table patterns) and the checks `validate` runs against its server;
//! - [`runtime`]: supervised tasks for every source, restarted with
//!   backoff, stopped gracefully;
//! - [`telemetry`] and [`metrics`]: what the connectors report while they
//!   run, and the metrics the hub exposes from it.

pub mod config;
pub mod error;
pub mod metrics;
pub mod mysql_source;
pub mod runtime;
pub mod sink;
pub mod source;
mod stack;
pub mod status;
pub mod telemetry;
pub mod topics;

pub use config::{ConfigError, Pipeline, load, parse};
