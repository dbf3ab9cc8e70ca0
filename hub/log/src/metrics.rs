//! Counters the log keeps about itself, read by the server's `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the fsync latency buckets, in microseconds.
pub const FSYNC_BUCKETS_US: [u64; 12] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
];

static FSYNC_COUNTS: [AtomicU64; FSYNC_BUCKETS_US.len() + 1] =
    [const { AtomicU64::new(0) }; FSYNC_BUCKETS_US.len() + 1];
static FSYNC_SUM_US: AtomicU64 = AtomicU64::new(0);

pub(crate) fn record_fsync(d: Duration) {
    let us = d.as_micros() as u64;
    let i = FSYNC_BUCKETS_US.partition_point(|&b| b < us);
    FSYNC_COUNTS[i].fetch_add(1, Ordering::Relaxed);
    FSYNC_SUM_US.fetch_add(us, Ordering::Relaxed);
}

/// A snapshot of the fsync latency histogram: non-cumulative counts per
/// bucket of [`FSYNC_BUCKETS_US`] (the last is +Inf), and the sum in µs.
pub fn fsync_histogram() -> (Vec<u64>, u64) {
    (
        FSYNC_COUNTS
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect(),
        FSYNC_SUM_US.load(Ordering::Relaxed),
    )
}
