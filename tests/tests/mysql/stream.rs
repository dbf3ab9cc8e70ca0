//! Snapshot, then the binlog: every row once, changes in order, a
//! restart from the stored position neither loses nor repeats a change.

use tributary_connector_mysql::source::SnapshotMode;
use tributary_core::{Op, SnapshotFlag};
use tributary_log::Log;
use tributary_schemas::Registry;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_then_binlog_exactly_once_across_a_restart() {
    tributary_tests::init_tracing();
    let mut db = MyDb::new("stream").await;
    db.exec(
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL, qty INT UNSIGNED, price DECIMAL(10,2));
         INSERT INTO items VALUES (1, 'one', 1, 1.10), (2, 'two', NULL, 2.20), (3, 'three', 4294967295, -3.30);",
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path().join("log")).expect("log");
    let registry = Registry::open(dir.path().join("registry")).expect("registry");
    let cfg = config(&db.name, &["items"], 2, SnapshotMode::Initial);
    let topic = cfg.topic(&db.name, "items");
    let mut running = Running::start(cfg.clone(), &log, &registry);
    running.wait(&log, &topic, 3, "snapshot").await;

    db.exec(
        "INSERT INTO items VALUES (4, 'four', 4, 4.40);
         BEGIN; UPDATE items SET qty = qty + 10 WHERE id = 1; DELETE FROM items WHERE id = 2; COMMIT;
         UPDATE items SET id = 30 WHERE id = 3;
         ALTER TABLE items ADD COLUMN note TEXT AFTER name;
         INSERT INTO items (id, name, note, qty, price) VALUES (5, 'five', 'added later', 5, 5.50);
         UPDATE items SET note = 'n' WHERE id = 4;",
    )
    .await;
    // 3 snapshot + 1 + 1 + (delete + tombstone) + (delete + tombstone +
    // create: the key changed) + 1 + 1 records.
    running.wait(&log, &topic, 12, "changes").await;
    let stats = running.stop().await;
    assert_eq!(stats.snapshot_rows, 3);
    assert!(stats.ddl >= 1, "{stats:?}");

    let evs = events(&log, &registry, &topic);
    let reads: Vec<_> = evs.iter().filter(|(e, _)| e.op == Op::Read).collect();
    assert_eq!(reads.len(), 3);
    assert_eq!(
        reads
            .iter()
            .filter(|(e, _)| e.source.snapshot == SnapshotFlag::Last)
            .count(),
        1,
        "one row closes the snapshot"
    );
    assert!(
        evs.iter()
            .filter(|(e, _)| e.op != Op::Read)
            .all(|(e, _)| e.transaction.is_some() && e.source.snapshot == SnapshotFlag::False),
        "binlog events carry their GTID"
    );
    // The events added the column mid-stream: the new rows have it, the
    // shape before the ALTER did not.
    let widths: std::collections::BTreeSet<usize> =
        evs.iter().map(|(_, t)| t.columns.len()).collect();
    assert_eq!(widths, [4, 5].into_iter().collect());
    let want = table_rows(&mut db, "items").await;
    assert_eq!(replay(&evs), want, "the log replays to the table");

    // Restart: the stored position is past everything; new changes only.
    let mut running = Running::start(cfg.clone(), &log, &registry);
    db.exec("INSERT INTO items (id, name, qty, price) VALUES (6, 'six', 6, 6.60)")
        .await;
    running.wait(&log, &topic, 13, "after restart").await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let stats = running.stop().await;
    assert_eq!(stats.snapshot_rows, 0, "no second snapshot");
    let evs = events(&log, &registry, &topic);
    assert_eq!(
        evs.len(),
        11,
        "3 reads + 8 change events, nothing twice: {:?}",
        evs.iter().map(|(e, _)| e.op).collect::<Vec<_>>()
    );
    assert_eq!(replay(&evs), table_rows(&mut db, "items").await);
    db.drop_db().await;
}

/// A source that sees no transaction after the server rotates its binlog
/// (FLUSH BINARY LOGS here; a restart or max_binlog_size in production)
/// still stores the position in the new file, so a resume does not start
/// from a file the server may already have purged; and resuming from it
/// finds the next change once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_source_stores_its_position_across_a_binlog_rotation() {
    tributary_tests::init_tracing();
    let mut db = MyDb::new("rotate").await;
    db.exec(
        "CREATE TABLE items (id INT PRIMARY KEY, v INT NOT NULL); INSERT INTO items VALUES (1, 1);",
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path().join("log")).expect("log");
    let registry = Registry::open(dir.path().join("registry")).expect("registry");
    let cfg = config(&db.name, &["items"], 1, SnapshotMode::Initial);
    let topic = cfg.topic(&db.name, "items");
    let mut running = Running::start(cfg.clone(), &log, &registry);
    running.wait(&log, &topic, 1, "snapshot").await;
    db.exec("INSERT INTO items VALUES (2, 2)").await;
    running.wait(&log, &topic, 2, "insert").await;

    db.exec("FLUSH BINARY LOGS").await;
    let rotated = master_position(&mut db.conn).await;
    wait_stored(
        &dir.path().join("log"),
        "my",
        &rotated,
        std::time::Duration::from_secs(20),
    )
    .await;
    running.stop().await;

    let mut running = Running::start(cfg, &log, &registry);
    db.exec("INSERT INTO items VALUES (3, 3)").await;
    running.wait(&log, &topic, 3, "after the resume").await;
    let stats = running.stop().await;
    assert_eq!(stats.snapshot_rows, 0, "the resume takes no new snapshot");
    let ids: Vec<String> = events(&log, &registry, &topic)
        .iter()
        .filter_map(|(e, _)| e.after.as_ref().map(|a| format!("{:?}", a[0])))
        .collect();
    let distinct: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(
        (ids.len(), distinct.len()),
        (3, 3),
        "each row once: {ids:?}"
    );
    db.drop_db().await;
}
