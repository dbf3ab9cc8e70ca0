//! `tributary-pipeline`: a pipeline declared in YAML, checked, and run.
//!
//! - [`config`]: the file: strict parsing, `${VAR}` interpolation, errors
//!   that name file, line, column and path;
//! - [`source`]: a `sources[i]` section to a running source (connection,
//!   table patterns) and the checks `validate` runs against its server;
//! - [`runtime`]: supervised tasks for every source, restarted with
//!   backoff, stopped gracefully.

pub mod config;
pub mod mysql_source;
pub mod runtime;
pub mod sink;
pub mod source;
mod stack;

pub use config::{ConfigError, Pipeline, load, parse};
