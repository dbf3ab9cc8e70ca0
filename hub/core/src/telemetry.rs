//! What a running source reports about itself while it runs: its phase
//! and how far behind its server it is. Written by the source on its own
//! path (atomics, no lock), read by the hub's `/metrics`, `/ready` and
//! `/pipelines` whenever they are asked.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

/// Where a source is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Connecting, or reconnecting after a lost connection.
    Connecting,
    /// Connected and reading the tables' current rows.
    Snapshot,
    /// Connected and following the change stream.
    Streaming,
}

impl Phase {
    /// The name `/pipelines` shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Connecting => "connecting",
            Phase::Snapshot => "snapshot",
            Phase::Streaming => "streaming",
        }
    }
}

/// A source's live progress, shared by the source (writer) and the hub
/// (reader). Positions are in the source's own unit (PostgreSQL: WAL
/// bytes, an LSN); the lag is known only once the server has said where
/// its stream ends.
#[derive(Debug, Default)]
pub struct SourceProgress {
    phase: AtomicU8,
    upstream_end: AtomicU64,
    acknowledged: AtomicU64,
    upstream_known: AtomicBool,
    acknowledged_known: AtomicBool,
    slot: Mutex<Option<SlotHealth>>,
}

/// What the server says of a PostgreSQL source's replication slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotHealth {
    /// WAL the slot keeps on the server's disk:
    /// `pg_current_wal_lsn() - restart_lsn`.
    pub retained_wal_bytes: u64,
    /// `reserved`, `extended`, `unreserved` or `lost`.
    pub wal_status: String,
    /// WAL that can still be written before the slot is in danger of
    /// being invalidated (`max_slot_wal_keep_size`); `None` without a
    /// limit.
    pub safe_wal_size: Option<i64>,
}

impl SourceProgress {
    /// Records the source's phase.
    pub fn set_phase(&self, phase: Phase) {
        let v = match phase {
            Phase::Connecting => 0,
            Phase::Snapshot => 1,
            Phase::Streaming => 2,
        };
        self.phase.store(v, Ordering::Relaxed);
    }

    /// The source's phase.
    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Relaxed) {
            1 => Phase::Snapshot,
            2 => Phase::Streaming,
            _ => Phase::Connecting,
        }
    }

    /// The server's stream reaches `end` (it only moves forward).
    pub fn observe_upstream(&self, end: u64) {
        self.upstream_end.fetch_max(end, Ordering::Relaxed);
        self.upstream_known.store(true, Ordering::Relaxed);
    }

    /// Everything up to `position` is durable in the log and confirmed to
    /// the server (it only moves forward).
    pub fn acknowledge(&self, position: u64) {
        self.acknowledged.fetch_max(position, Ordering::Relaxed);
        self.acknowledged_known.store(true, Ordering::Relaxed);
    }

    /// The last position confirmed to the server, if any.
    pub fn acknowledged(&self) -> Option<u64> {
        self.acknowledged_known
            .load(Ordering::Relaxed)
            .then(|| self.acknowledged.load(Ordering::Relaxed))
    }

    /// Records what the server said of the source's slot.
    pub fn set_slot(&self, health: SlotHealth) {
        *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(health);
    }

    /// The slot's health as last seen, if the source reports one.
    pub fn slot(&self) -> Option<SlotHealth> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How far the confirmed position is behind the server's stream end,
    /// once both are known.
    pub fn lag(&self) -> Option<u64> {
        let ack = self.acknowledged()?;
        self.upstream_known.load(Ordering::Relaxed).then(|| {
            self.upstream_end
                .load(Ordering::Relaxed)
                .saturating_sub(ack)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_known_once_both_ends_are() {
        let p = SourceProgress::default();
        assert_eq!(p.phase(), Phase::Connecting);
        assert_eq!(p.lag(), None);
        p.observe_upstream(100);
        assert_eq!(p.lag(), None);
        p.acknowledge(40);
        assert_eq!(p.lag(), Some(60));
        // Neither end moves back.
        p.observe_upstream(90);
        p.acknowledge(30);
        assert_eq!(p.lag(), Some(60));
        p.acknowledge(120);
        assert_eq!(p.lag(), Some(0));
        p.set_phase(Phase::Streaming);
        assert_eq!(p.phase(), Phase::Streaming);
    }
}
