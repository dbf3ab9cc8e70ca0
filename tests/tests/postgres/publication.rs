//! Publication scopes: the tables of some schemas, or all tables. What
//! exists at the start is snapshotted; a table created later is captured
//! from its creation through the stream, and not read again on restart.

use std::time::Duration;

use tributary_connector_postgres::source::{
    PublicationScope, RunStats, SnapshotMode, StreamConfig, StreamSource, prepare, topic_name,
};
use tributary_log::Log;
use tributary_schemas::Registry;
use tributary_schemas::writer::EventWriter;

use super::{TestDb, current_lsn, wait_confirmed_within};

fn rows(log: &Log, schema: &str, table: &str) -> u64 {
    log.topic(&topic_name("pg", schema, table)).map_or(0, |t| {
        t.partitions()
            .iter()
            .map(|p| p.high_watermark())
            .sum::<u64>()
    })
}

/// Runs the source until the slot has confirmed everything written so
/// far, then stops it.
async fn run_once(db: &TestDb, cfg: &StreamConfig, dir: &std::path::Path, log: &Log) -> RunStats {
    prepare(&db.client, cfg).await.expect("prepare");
    let registry = Registry::open(dir.join("registry")).expect("registry");
    let mut source = StreamSource::new(
        cfg.clone(),
        log.clone(),
        EventWriter::new(log.clone(), registry),
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move { source.run(stop_rx).await });
    // Streaming once the slot is active.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let active = db
            .client
            .query_opt(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active",
                &[&cfg.slot],
            )
            .await
            .expect("slot")
            .is_some();
        if active {
            break;
        }
        assert!(!task.is_finished(), "source stopped: {:?}", task.await);
        assert!(tokio::time::Instant::now() < deadline, "never streamed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A table created while streaming.
    db.client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS s1.later (id int PRIMARY KEY);
             INSERT INTO s1.later SELECT g FROM generate_series(1, 5) g ON CONFLICT DO NOTHING;",
        )
        .await
        .expect("later table");
    let end = current_lsn(db).await;
    wait_confirmed_within(db, &cfg.slot, end, Duration::from_secs(30)).await;
    stop_tx.send(true).expect("stop");
    task.await.expect("join").expect("source ran cleanly")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_and_all_tables_publications() {
    let db = TestDb::new("pubscope").await;
    db.client
        .batch_execute(
            "CREATE SCHEMA s1; CREATE SCHEMA s2;
             CREATE TABLE s1.a (id int PRIMARY KEY); INSERT INTO s1.a SELECT g FROM generate_series(1, 30) g;
             CREATE TABLE s1.b (id int PRIMARY KEY); INSERT INTO s1.b SELECT g FROM generate_series(1, 20) g;
             CREATE TABLE s2.c (id int PRIMARY KEY); INSERT INTO s2.c SELECT g FROM generate_series(1, 10) g;",
        )
        .await
        .expect("ddl");

    // The tables of schema s1 only.
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path().join("log")).expect("log");
    let mut cfg = tributary_tests::pg_stream_config(&db.name, "unused", 2, SnapshotMode::Initial);
    cfg.tables.clear();
    cfg.publication_scope = PublicationScope::Schemas(vec!["s1".into()]);
    let first = run_once(&db, &cfg, dir.path(), &log).await;
    assert_eq!(first.snapshot_rows, 50, "s1.a and s1.b read");
    assert_eq!((rows(&log, "s1", "a"), rows(&log, "s1", "b")), (30, 20));
    assert_eq!(rows(&log, "s2", "c"), 0, "s2 is not in the publication");
    assert_eq!(rows(&log, "s1", "later"), 5, "a new table is streamed");
    // On restart nothing is read again, the new table included.
    let second = run_once(&db, &cfg, dir.path(), &log).await;
    assert_eq!(second.snapshot_rows, 0);
    assert_eq!(rows(&log, "s1", "later"), 5);
    super::drop_slot(&db, &cfg.slot).await;

    // Every table.
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path().join("log")).expect("log");
    let mut all = cfg.clone();
    all.publication = format!("{}_all", db.name);
    all.slot = format!("{}_all", db.name);
    all.publication_scope = PublicationScope::AllTables;
    let stats = run_once(&db, &all, dir.path(), &log).await;
    assert_eq!(stats.snapshot_rows, 65, "all four tables read");
    assert_eq!(rows(&log, "s2", "c"), 10);
    super::drop_slot(&db, &all.slot).await;
    db.drop_db().await;
}
