//! Publication scopes: the tables of some schemas, or all tables. What
//! exists at the start is snapshotted; a table created later is captured
//! from its creation through the stream, and not read again on restart.

use std::time::Duration;

use tributary_capture::writer::EventWriter;
use tributary_connector_postgres::source::{
    PublicationScope, RunStats, SnapshotMode, StreamConfig, StreamSource, prepare, topic_name,
};
use tributary_core::telemetry::{Phase, SourceProgress};
use tributary_log::Log;
use tributary_schemas::Registry;

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
    let progress = std::sync::Arc::new(SourceProgress::default());
    let mut source = StreamSource::new(
        cfg.clone(),
        log.clone(),
        EventWriter::new(log.clone(), registry),
    )
    .with_progress(std::sync::Arc::clone(&progress));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move { source.run(stop_rx).await });
    // The table below must be created once the snapshot is over and the
    // stream has begun (the slot is active from its creation on, while
    // the snapshot is still read).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if progress.phase() == Phase::Streaming {
            break;
        }
        assert!(!task.is_finished(), "source stopped: {:?}", task.await);
        assert!(tokio::time::Instant::now() < deadline, "never streamed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A table created while streaming.
    db.exec(
        "CREATE TABLE IF NOT EXISTS s1.later (id int PRIMARY KEY);
             INSERT INTO s1.later SELECT g FROM generate_series(1, 5) g ON CONFLICT DO NOTHING;",
    )
    .await;
    let end = current_lsn(db).await;
    wait_confirmed_within(db, &cfg.slot, end, Duration::from_secs(30)).await;
    stop_tx.send(true).expect("stop");
    task.await.expect("join").expect("source ran cleanly")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_and_all_tables_publications() {
    let db = TestDb::new("pubscope").await;
    db.exec(
            "CREATE SCHEMA s1; CREATE SCHEMA s2;
             CREATE TABLE s1.a (id int PRIMARY KEY); INSERT INTO s1.a SELECT g FROM generate_series(1, 30) g;
             CREATE TABLE s1.b (id int PRIMARY KEY); INSERT INTO s1.b SELECT g FROM generate_series(1, 20) g;
             CREATE TABLE s2.c (id int PRIMARY KEY); INSERT INTO s2.c SELECT g FROM generate_series(1, 10) g;",
        ).await;

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

/// A table created by a transaction that commits while the source creates
/// its slot is in neither the table list read before nor the stream (its
/// rows precede the slot's consistent point): the source finds it once
/// the slot exists and reads it at a later point, so its rows are not
/// lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_created_while_the_slot_is_created_is_read() {
    let db = TestDb::new("publate").await;
    db.exec(
        "CREATE SCHEMA s1; CREATE TABLE s1.a (id int PRIMARY KEY);
             INSERT INTO s1.a SELECT g FROM generate_series(1, 3) g;",
    )
    .await;
    // Open, with the table and its rows, before the source starts: the
    // slot's creation waits for it to end.
    let other = tributary_tests::pg::connect(&db.name).await;
    other
        .batch_execute(
            "BEGIN; CREATE TABLE s1.late (id int PRIMARY KEY);
             INSERT INTO s1.late SELECT g FROM generate_series(1, 7) g;",
        )
        .await
        .expect("open transaction");

    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path().join("log")).expect("log");
    let mut cfg = tributary_tests::pg_stream_config(&db.name, "unused", 1, SnapshotMode::Initial);
    cfg.tables.clear();
    cfg.publication_scope = PublicationScope::Schemas(vec!["s1".into()]);
    prepare(&db.client, &cfg).await.expect("prepare");
    let registry = Registry::open(dir.path().join("registry")).expect("registry");
    let (stop_tx, task) = tributary_tests::pg::spawn_source(&cfg, &log, registry);
    // The slot shows while it waits for the open transaction.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while db
        .client
        .query_opt(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
            &[&cfg.slot],
        )
        .await
        .expect("slot")
        .is_none()
    {
        assert!(!task.is_finished(), "source stopped: {:?}", task.await);
        assert!(tokio::time::Instant::now() < deadline, "no slot");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    other.batch_execute("COMMIT").await.expect("commit");
    db.exec("INSERT INTO s1.late VALUES (8)").await;
    let end = current_lsn(&db).await;
    wait_confirmed_within(&db, &cfg.slot, end, Duration::from_secs(30)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while rows(&log, "s1", "late") < 8 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_tx.send(true).expect("stop");
    let stats = task.await.expect("join").expect("source ran cleanly");
    assert_eq!(rows(&log, "s1", "a"), 3);
    assert_eq!(
        rows(&log, "s1", "late"),
        8,
        "the 7 rows committed during the slot's creation and the one after"
    );
    // The row inserted after the commit is read with the late table or
    // streamed after its read point, depending on which came first.
    assert!(
        matches!(stats.snapshot_rows, 10 | 11),
        "s1.a and s1.late read: {}",
        stats.snapshot_rows
    );
    super::drop_slot(&db, &cfg.slot).await;
    db.drop_db().await;
}
