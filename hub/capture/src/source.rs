//! The seam under every source: [`ChangeSource`].

use std::future::Future;

use tokio::sync::watch;

use crate::capture::{AckHook, Capture};
use crate::error::{CaptureError, ErrorKind};

/// A database's change stream, as the capture engine drives it.
///
/// # The acknowledgement contract
///
/// A source tells the engine, through its [`Capture`], every change in
/// stream order: a transaction is [`begin`](Capture::begin)-ned at a
/// [`StreamKey`](crate::StreamKey) that sorts after every earlier one,
/// its events [`push`](Capture::push)-ed, and it is
/// [`commit`](Capture::commit)-ted at a `Position`: the source's own
/// resume point (an LSN, a binlog position and GTID set) covering
/// everything up to and including it. The engine appends the events and
/// reports a position through [`Capture::durable`] (and the
/// [`on_durable`](Self::on_durable) hook) only once every record of
/// every transaction committed up to it is durable in the log. A source
/// acknowledges upstream (confirms an LSN, stores a binlog position)
/// only positions the engine reported durable, never one it merely
/// committed. So after any crash the server still holds everything not
/// durable, and the stream resumes from a position whose changes are all
/// in the log.
///
/// A stream replayed after a crash may resend changes that reached the
/// log but were not acknowledged: every record carries its
/// [`RecordPosition`](crate::RecordPosition) and the writer skips those a
/// partition already holds, so each change lands once, provided the
/// source cuts a replayed transaction the same way (same key, the same
/// [`boundary`](Capture::boundary) calls).
///
/// # A session
///
/// The engine calls [`session`](Self::session) once per connection: the
/// source connects, takes the snapshot its mode asks for (snapshot rows
/// carry no position; the source records per table what it finished, in
/// its own state, after flushing the log), calls
/// [`Capture::streaming`] and follows the stream until `stop` turns
/// true. An error ends the session; [`classify`](Self::classify) says
/// whether the engine reconnects (with backoff), starts over from a new
/// snapshot, or gives up.
pub trait ChangeSource: Send {
    /// The source's resume point.
    type Position: Clone + Send + Sync + std::fmt::Debug + 'static;
    /// The source's errors.
    type Error: std::error::Error + From<CaptureError> + Send + Sync + 'static;
    /// The database's name, for logs ("PostgreSQL").
    const DATABASE: &'static str;

    /// One connection's life: connect, snapshot if needed, stream until
    /// `stop` turns true (then return `Ok`).
    fn session(
        &mut self,
        capture: &mut Capture<Self::Position>,
        stop: &mut watch::Receiver<bool>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// What the engine does after `error` ended a session; `streamed`
    /// says whether any session of this run reached the stream.
    fn classify(&self, error: &Self::Error, streamed: bool) -> ErrorKind;

    /// The topics the source writes that hold no change events (a schema
    /// history): readers of change events leave them out.
    fn internal_topics(&self) -> Vec<String> {
        Vec::new()
    }

    /// A hook the log-writer thread calls with each newly durable
    /// position (for sources that store it themselves).
    fn on_durable(&self) -> Option<AckHook<Self::Position>> {
        None
    }

    /// Forgets the stored position after [`ErrorKind::PositionLost`] in
    /// snapshot mode `when_needed`, so the next session snapshots again.
    fn forget_position(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}
