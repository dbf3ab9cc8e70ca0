//! Tributary's end-to-end tests: one binary, a module per area. Every test
//! uses real files, real processes and (in later areas) the real local
//! services, each with its own directory, database or key prefix.

mod capture;
mod log;
mod mysql;
mod pipeline;
mod postgres;
mod schemas;
mod sinks;
