//! An idle captured table: the slot's `confirmed_flush_lsn` keeps moving
//! while other tables write WAL (keepalives are acknowledged when nothing
//! is in flight), and heartbeats — transactional logical messages — make
//! the round trip through the slot without adding records to the log.

use std::time::Duration;

use tributary_connector_postgres::replication::parse_lsn;
use tributary_connector_postgres::source::{SnapshotMode, prepare, topic_name};
use tributary_log::Log;
use tributary_schemas::Registry;

use super::{TestDb, connect};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_table_slot_advances() {
    let db = TestDb::new("heartbeat").await;
    db.exec(
        "CREATE TABLE idle (id int PRIMARY KEY); CREATE TABLE busy (id int PRIMARY KEY, v text);",
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path().join("log")).expect("log");
    let registry = Registry::open(dir.path().join("registry")).expect("registry");
    let cfg = tributary_tests::pg_stream_config(&db.name, "idle", 1, SnapshotMode::Never);
    let sql = connect(&db.name).await;
    prepare(&sql, &cfg).await.expect("prepare");
    let start: String = db
        .client
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .expect("lsn")
        .get(0);
    let start = parse_lsn(&start).expect("lsn");
    let (stop_tx, task) = tributary_tests::pg::spawn_source(&cfg, &log, registry);
    // WAL from a table the publication does not hold.
    db.exec("INSERT INTO busy SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g")
        .await;
    let after: String = db
        .client
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .expect("lsn")
        .get(0);
    let after = parse_lsn(&after).expect("lsn");
    assert!(after > start + 1_000_000, "the busy table wrote WAL");
    super::wait_confirmed(&db, &cfg.slot, after).await;
    assert!(
        log.topic(&topic_name("pg", "public", "idle")).is_err(),
        "heartbeats write no records"
    );
    // Let a few heartbeats make the round trip.
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop_tx.send(true).expect("stop");
    let stats = task.await.expect("join").expect("source ran cleanly");
    assert!(
        stats.heartbeats >= 2,
        "heartbeats came back through the slot: {stats:?}"
    );
    assert_eq!(stats.events, 0);
    super::drop_slot(&db, &cfg.slot).await;
    db.drop_db().await;
}
