//! `tributary run` as a real process: a PostgreSQL pipeline receives
//! SIGTERM mid-stream, stops cleanly, restarts, and the log ends with
//! every row exactly once.

use std::time::Duration;

use tributary_tests::pg::{TestDb, current_lsn, log_keys, wait_confirmed_within, wait_slot};

use crate::common::{self, start};

const BEFORE: i64 = 500;
const TXS: i64 = 300;
const ROWS_PER_TX: i64 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_stream_then_restart_loses_and_repeats_nothing() {
    let db = TestDb::new("run").await;
    db.exec(&format!(
        "CREATE TABLE items (id bigint PRIMARY KEY, v text NOT NULL);
             INSERT INTO items SELECT g, 'before ' || g FROM generate_series(1, {BEFORE}) g;"
    ))
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let slot = format!("{}_slot", db.name);
    let file = common::pipeline_file(
        dir.path(),
        &format!(
            "{}{}    heartbeat_ms: 200\n",
            common::log_yaml(Some(2)),
            common::pg_source_yaml(&db.name, "public.items")
        ),
    );

    let child = start(&file);
    // Streaming.
    wait_slot(&db, &slot, "active", Duration::from_secs(30)).await;
    let name = db.name.clone();
    let writes = tokio::spawn(async move {
        let writer = tributary_tests::pg::connect(&name).await;
        for tx in 0..TXS {
            let base = 1_000 + tx * ROWS_PER_TX;
            writer
                .batch_execute(&format!(
                    "INSERT INTO items SELECT g, 'v' || g FROM generate_series({base}, {}) g",
                    base + ROWS_PER_TX - 1
                ))
                .await
                .expect("insert");
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    });
    // Stopped while transactions keep committing.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let out = common::stop(child);
    assert!(out.contains("source pg: stopped"), "{out}");

    // Restarted: it goes on from the slot and the log.
    let child = start(&file);
    writes.await.expect("writes");
    let end = current_lsn(&db).await;
    wait_confirmed_within(&db, &slot, end, Duration::from_secs(60)).await;
    common::stop(child);

    let (total, per_key) = log_keys(&dir.path().join("data"), "pg.public.items");
    let want = (BEFORE + TXS * ROWS_PER_TX) as usize;
    assert_eq!(per_key.len(), want, "every row reached the log");
    assert_eq!(total, want, "no row twice");
    tributary_tests::pg::drop_slot(&db, &slot).await;
    db.drop_db().await;
}
