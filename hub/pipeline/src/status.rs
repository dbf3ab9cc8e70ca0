//! What status shows of each connector: shared by the runtime, which
//! sets it, and telemetry, which reports it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// A connector's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Connecting, preparing, snapshotting.
    Starting,
    /// Streaming.
    Running,
    /// Failed; restarting after a wait.
    Restarting,
    /// Stopped (shutdown, or an `initial_only` snapshot finished).
    Stopped,
    /// A sink paused by `on_error: stop` or a fatal error, at its
    /// committed offset, until the pipeline restarts.
    Paused,
}

/// What status shows of a connector.
#[derive(Debug, Clone)]
pub struct ConnectorStatus {
    /// `source` or `sink`.
    pub role: &'static str,
    /// Its state.
    pub state: State,
    /// Restarts after failures.
    pub restarts: u32,
    /// The last failure, if any (never holds secrets: connection errors
    /// name host, port, database and user only).
    pub last_error: Option<String>,
    /// Change events written by its finished runs.
    pub events: u64,
}

/// Every connector's status, by name.
pub type Status = Arc<Mutex<BTreeMap<String, ConnectorStatus>>>;

/// The name a sink's worker has in [`Status`]: the sink's, with `#w`
/// when it has several workers.
pub fn worker_label(sink: &str, worker: u32, parallelism: u32) -> String {
    if parallelism > 1 {
        format!("{sink}#{worker}")
    } else {
        sink.to_string()
    }
}
