//! Polling until what a test waits for is there, with a deadline and a
//! message that says what never came.

use std::time::Duration;

/// Polls `probe` every 100 ms for up to 60 s until `check` holds, and
/// returns that value; otherwise panics with `what` and the last value.
pub async fn eventually<T: std::fmt::Debug>(
    what: &str,
    probe: impl AsyncFnMut() -> T,
    check: impl Fn(&T) -> bool,
) -> T {
    eventually_within(Duration::from_secs(60), what, probe, check).await
}

/// [`eventually`] with a deadline of `limit`.
pub async fn eventually_within<T: std::fmt::Debug>(
    limit: Duration,
    what: &str,
    mut probe: impl AsyncFnMut() -> T,
    check: impl Fn(&T) -> bool,
) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let v = probe().await;
        if check(&v) {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: last {v:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits up to 60 s until the source's rows (`want`) and the target's
/// (`got`) are the same; otherwise panics with the first differences.
pub async fn wait_same_rows(
    what: &str,
    mut want: impl AsyncFnMut() -> Vec<String>,
    mut got: impl AsyncFnMut() -> Vec<String>,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (w, g) = (want().await, got().await);
        if w == g {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            let diff: Vec<_> = w.iter().zip(&g).filter(|(a, b)| a != b).take(3).collect();
            panic!(
                "{what}: the target never matched: {} rows in the source, {} in the target; first differences {diff:?}",
                w.len(),
                g.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
