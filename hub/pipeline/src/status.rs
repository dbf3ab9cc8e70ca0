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
    /// committed offset, until restarted (`tributary restart NAME`) or
    /// the pipeline runs again.
    Paused,
    /// A source stopped by a failure that would repeat (a value or
    /// schema change it cannot capture, a lost position, a refused
    /// login): nothing after its stored position is acknowledged; it
    /// stays stopped until restarted (`tributary restart NAME`) or the
    /// pipeline runs again.
    Failed,
}

impl State {
    /// Its name in status, `/pipelines` and the metrics.
    pub fn name(&self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Running => "running",
            State::Restarting => "restarting",
            State::Stopped => "stopped",
            State::Paused => "paused",
            State::Failed => "failed",
        }
    }
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
