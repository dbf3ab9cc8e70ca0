//! The hub's integration tests: one binary (one link of the whole hub), a
//! module per area under `hub/`. Each test works with a process, a data
//! directory, a database, a Redis key prefix and ports of its own, so
//! they run side by side. Tests that stop or restart a shared service are
//! in `restarts.rs`, a binary of their own.

mod common;
mod hub;
