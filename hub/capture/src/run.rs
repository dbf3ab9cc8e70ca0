//! The engine's loop around a source's sessions: reconnect with
//! exponential backoff, a new snapshot when the position is lost and the
//! mode allows, stop on anything that would repeat.

use tokio::sync::watch;
use tributary_core::telemetry::Phase;

use crate::capture::Capture;
use crate::config::{Engine, RunStats, SnapshotMode};
use crate::error::ErrorKind;
use crate::source::ChangeSource;

/// Runs `source` until `stop` turns true or an error that would repeat.
/// A lost connection is retried with `engine.reconnect`'s backoff (reset
/// once a session reached the stream); what was already written is not
/// written again.
pub async fn run<S: ChangeSource>(
    source: &mut S,
    engine: &Engine,
    mut stop: watch::Receiver<bool>,
) -> Result<RunStats, S::Error> {
    let mut stats = RunStats::default();
    let mut delay = engine.settings.reconnect.initial;
    loop {
        if *stop.borrow() {
            return Ok(stats);
        }
        let before = stats.sessions;
        engine.progress.set_phase(Phase::Connecting);
        let mut capture = Capture::open(engine, source.on_durable(), stats);
        let session = source.session(&mut capture, &mut stop).await;
        let (after, written) = capture.close().await;
        stats = after;
        // The writer's failure is the cause of any the session saw after it.
        let err = match (session, written) {
            (_, Err(w)) => S::Error::from(w),
            (Err(e), Ok(())) => e,
            (Ok(()), Ok(())) => return Ok(stats),
        };
        match source.classify(&err, stats.sessions > 0) {
            ErrorKind::PositionLost if engine.settings.snapshot == SnapshotMode::WhenNeeded => {
                tracing::warn!(source = %engine.name, error = %err, "taking a new snapshot");
                source.forget_position()?;
                continue;
            }
            ErrorKind::Transient if !*stop.borrow() => {}
            _ => return Err(err),
        }
        if stats.sessions > before {
            delay = engine.settings.reconnect.initial;
        }
        stats.reconnects += 1;
        tracing::warn!(source = %engine.name, error = %err, retry_in_ms = delay.as_millis() as u64, "{} connection lost; reconnecting", S::DATABASE);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return Ok(stats);
        }
        delay = (delay * 2).min(engine.settings.reconnect.max);
    }
}
