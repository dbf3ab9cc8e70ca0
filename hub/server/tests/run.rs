//! `tributary run` as a real process: a PostgreSQL pipeline receives
//! SIGTERM mid-stream, stops cleanly, restarts, and the log ends with
//! every row exactly once.

use std::time::Duration;

use tributary_tests::pg::{TestDb, current_lsn, log_keys, wait_confirmed_within};

const BEFORE: i64 = 500;
const TXS: i64 = 300;
const ROWS_PER_TX: i64 = 5;

mod common;

use common::{start, terminate};

async fn wait_streaming(db: &TestDb, slot: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let active = db
            .client
            .query_opt(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active",
                &[&slot],
            )
            .await
            .expect("slot")
            .is_some();
        if active {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "never streamed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_stream_then_restart_loses_and_repeats_nothing() {
    let db = TestDb::new("run").await;
    db.client
        .batch_execute(&format!(
            "CREATE TABLE items (id bigint PRIMARY KEY, v text NOT NULL);
             INSERT INTO items SELECT g, 'before ' || g FROM generate_series(1, {BEFORE}) g;"
        ))
        .await
        .expect("ddl");
    let dir = tempfile::tempdir().expect("tempdir");
    let slot = format!("{}_slot", db.name);
    let file = dir.path().join("pipeline.yaml");
    std::fs::write(
        &file,
        format!(
            "log:\n  dir: data\n  partitions: 2\n  fsync_interval_ms: 20\n\
             sources:\n  - name: pg\n    kind: postgres\n\
             \x20   url: postgres://postgres@127.0.0.1:5432/{db}?sslmode=disable\n\
             \x20   slot: {slot}\n    publication: {db}_pub\n\
             \x20   heartbeat_ms: 200\n    tables:\n      include: [public.items]\n",
            db = db.name
        ),
    )
    .expect("pipeline file");

    let child = start(&file);
    wait_streaming(&db, &slot).await;
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
    let (status, out) = terminate(child);
    assert!(status.success(), "clean stop: {status}\n{out}");
    assert!(out.contains("source pg: stopped"), "{out}");

    // Restarted: it goes on from the slot and the log.
    let child = start(&file);
    writes.await.expect("writes");
    let end = current_lsn(&db).await;
    wait_confirmed_within(&db, &slot, end, Duration::from_secs(60)).await;
    let (status, out) = terminate(child);
    assert!(status.success(), "clean stop: {status}\n{out}");

    let (total, per_key) = log_keys(&dir.path().join("data"), "pg.public.items");
    let want = (BEFORE + TXS * ROWS_PER_TX) as usize;
    assert_eq!(per_key.len(), want, "every row reached the log");
    assert_eq!(total, want, "no row twice");
    tributary_tests::pg::drop_slot(&db, &slot).await;
    db.drop_db().await;
}
