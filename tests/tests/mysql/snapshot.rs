//! A snapshot taken while the table is written: rows read by the snapshot
//! and rows the binlog brings after its position meet without a gap or an
//! overlap, and the log replays to the table.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use tributary_connector_mysql::source::SnapshotMode;
use tributary_core::Op;
use tributary_log::Log;
use tributary_schemas::Registry;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_while_writing_every_row_exactly_once() {
    tributary_tests::init_tracing();
    let mut db = MyDb::new("snapwrite").await;
    db.exec(
        "CREATE TABLE items (id INT PRIMARY KEY, v INT NOT NULL, pad VARCHAR(100));
         INSERT INTO items SELECT seq, 0, REPEAT('p', 100) FROM seq_1_to_30000;",
    )
    .await;
    let mut conn = mysql_async::Conn::new(
        mysql_async::Opts::from_url(&format!("{URL}{}", db.name)).expect("url"),
    )
    .await
    .expect("connect");
    // Inserts, updates and deletes run before, during and after the
    // snapshot (which reads 1000 rows per query).
    let writer = tokio::spawn(async move {
        for i in 0..400u32 {
            let new = 30_001 + i;
            let upd = 1 + (i * 73) % 30_000;
            let del = 1 + (i * 151 + 7) % 30_000;
            conn.query_drop(format!(
                "BEGIN; INSERT INTO items VALUES ({new}, 1, NULL); UPDATE items SET v = v + 1 WHERE id = {upd}; DELETE FROM items WHERE id = {del}; COMMIT;"
            ))
            .await
            .expect("write");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        conn
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path().join("log")).expect("log");
    let registry = Registry::open(dir.path().join("registry")).expect("registry");
    let cfg = config(&db.name, &["items"], 3, SnapshotMode::Initial);
    let topic = cfg.topic(&db.name, "items");
    let running = Running::start(cfg, &log, &registry);
    let _ = writer.await.expect("writer");
    let end = master_position(&mut db.conn).await;
    wait_stored(log.dir(), "my", &end, Duration::from_secs(60)).await;
    let stats = running.stop().await;
    assert!(stats.snapshot_rows > 20_000, "{stats:?}");
    // The engine's ledger records the table as read, with its rows.
    let ledger = tributary_capture::SnapshotLedger::<
        tributary_connector_mysql::position::BinlogPosition,
    >::load(log.dir().join("sources/my/snapshot.json"), log.clone())
    .expect("ledger");
    let read = ledger.get(&db.name, "items").expect("items in the ledger");
    assert_eq!(read.rows, stats.snapshot_rows);
    assert!(!read.as_of.file.is_empty(), "{:?}", read.as_of);
    let evs = events(&log, &registry, &topic);
    // A row is read by the snapshot or created in the binlog, not both.
    let mut seen = std::collections::HashMap::new();
    for (e, t) in &evs {
        if matches!(e.op, Op::Read | Op::Create) {
            let row = e.after.as_ref().expect("after");
            *seen.entry(key_text(row, t)).or_insert(0) += 1;
        }
    }
    assert!(seen.values().all(|&n| n == 1), "a row arrived twice");
    assert_eq!(replay(&evs), table_rows(&mut db, "items").await);
    db.drop_db().await;
}
